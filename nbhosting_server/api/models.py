"""What the JSON API reads (query parameters, bodies) and answers, as pydantic models (pure).

Query models forbid unknown parameters and bound every value; a course's name and a student's id are checked by
:mod:`nbhosting_core.naming`, as everywhere else. A moment is seconds since the epoch or an ISO 8601 time (UTC
when it names no zone), between the years 1 and 9999.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from nbhosting_core.coursemodels import CourseView
from nbhosting_core.coursestats import MAX_DAYS
from nbhosting_core.errors import InvalidInput
from nbhosting_core.events import EventKind
from nbhosting_core.eventstore import MAX_EVENTS, HostSample
from nbhosting_core.models import ServerView
from nbhosting_core.naming import COURSE_RE, MAX_STUDENT_ID, validate_course, validate_student_id
from nbhosting_core.roles import Permission, Role
from nbhosting_core.serveradmin import DEFAULT_LOG_LINES, MAX_LOG_LINES

#: the earliest and latest moments a query may name (0001-01-01 and 10000-01-01 UTC: any ISO 8601 time is between)
FIRST_MOMENT = -62135596800.0
LAST_MOMENT = 253402300800.0
#: a student id's characters: printable ASCII but '/' and '\\' (what naming.validate_student_id lets in)
STUDENT_ID_PATTERN = rf"^[!-.0-\[\]-~]{{1,{MAX_STUDENT_ID}}}$"


def _course(value: str) -> str:
    try:
        return validate_course(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc


def _student_id(value: str) -> str:
    try:
        return validate_student_id(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc


def _moment(value: Any) -> float:
    """Seconds since the epoch from a number, a number's text, or an ISO 8601 time (naive: UTC)."""
    if isinstance(value, bool):
        raise ValueError("a moment is a number of seconds or an ISO 8601 time")
    if isinstance(value, str):
        text = value.strip().upper().replace(":60", ":59")  # RFC 3339's "t" and "z"; a leap second: the one before
        if len(text) > 40:
            raise ValueError("a moment is a number of seconds or an ISO 8601 time")
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
                seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
            except (ValueError, OverflowError) as exc:  # year 1 in a zone east of UTC overflows
                raise ValueError("a moment is a number of seconds or an ISO 8601 time") from exc
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        raise ValueError("a moment is a number of seconds or an ISO 8601 time")
    if not math.isfinite(seconds) or not FIRST_MOMENT <= seconds <= LAST_MOMENT:
        raise ValueError("a moment lies between the years 1 and 9999")
    return seconds


#: a course's name as JSON Schema says it (what naming.validate_course lets in: no "..")
COURSE_SCHEMA = {"type": "string", "maxLength": 64, "pattern": COURSE_RE.pattern, "not": {"pattern": r"\.\."}}
#: a student id as JSON Schema says it
STUDENT_ID_SCHEMA = {"type": "string", "maxLength": MAX_STUDENT_ID, "pattern": STUDENT_ID_PATTERN}
CourseName = Annotated[str, AfterValidator(_course), WithJsonSchema(COURSE_SCHEMA)]
StudentId = Annotated[str, AfterValidator(_student_id), WithJsonSchema(STUDENT_ID_SCHEMA)]
Moment = Annotated[
    float,
    BeforeValidator(_moment),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": FIRST_MOMENT, "maximum": LAST_MOMENT},
                {"type": "string", "format": "date-time"},
            ],
            "description": "Seconds since the epoch, or an ISO 8601 time (UTC when it names no zone).",
        }
    ),
]


class Query(BaseModel):
    """Query parameters: unknown ones refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoQuery(Query):
    """No query parameter."""


class CoursesQuery(Query):
    archived: bool = Field(False, description="Archived courses too.")


class ServersQuery(Query):
    course: CourseName | None = Field(None, description="Of this course only.")
    details: bool = Field(False, description="Each running server's activity and usage (one probe each).")


class LogsQuery(Query):
    lines: int = Field(DEFAULT_LOG_LINES, ge=1, le=MAX_LOG_LINES, description="How many of the last lines.")


class StudentsQuery(Query):
    course: CourseName | None = Field(None, description="Seen in this course.")
    search: str | None = Field(None, min_length=1, max_length=MAX_STUDENT_ID, description="Part of the student id.")
    limit: int = Field(100, ge=1, le=MAX_EVENTS)
    offset: int = Field(0, ge=0, le=10_000_000)


class StudentQuery(Query):
    course: CourseName | None = Field(None, description="Their workspace and servers in this course only.")


class EventsQuery(Query):
    course: CourseName | None = None
    student_id: StudentId | None = None
    kind: EventKind | None = None
    since: Moment | None = Field(None, description="Included.")
    until: Moment | None = Field(None, description="Excluded.")
    limit: int = Field(100, ge=1, le=MAX_EVENTS)
    before_id: int | None = Field(None, ge=1, le=2**63 - 1, description="The previous page's next_before_id.")


class StatisticsQuery(Query):
    days: int = Field(30, ge=1, le=MAX_DAYS, description="UTC days, today included.")


class SamplesQuery(Query):
    since: Moment | None = Field(None, description="Included; default a day before until.")
    until: Moment | None = Field(None, description="Excluded; default now.")
    points: int = Field(500, ge=2, le=5000, description="At most this many samples (evenly thinned).")


class NoBody(BaseModel):
    """An empty JSON object (or no body at all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------------------------ answers


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class ApiError(Answer):
    """Every refusal and failure: a short slug, and a sentence for the person or the script."""

    error: str = Field(description="A slug: invalid-input, unauthenticated, forbidden, not-found, busy, ...")
    message: str
    retry_after: int | None = Field(None, description="Seconds to wait before trying again (also in Retry-After).")


class Me(Answer):
    """Who the request acts for, and what they may do."""

    username: str
    role: Role
    via: str = Field(description="session or token")
    courses: list[str] = Field(description="The courses they teach.")
    student_id: str | None = Field(None, description="The student id they try notebooks as.")
    host_permissions: list[Permission] = Field(description="What they may do host-wide (every course at once).")
    course_permissions: list[Permission] = Field(description="What they may do in each of their courses.")


class CourseList(Answer):
    courses: list[CourseView]


class ServerList(Answer):
    servers: list[ServerView]


class ServerLogs(Answer):
    course: str
    student_id: str
    lines: int = Field(description="How many lines were asked for.")
    text: str = Field(description="At most that many last lines (at most 256 KiB), control characters replaced.")


class SampleList(Answer):
    since: float
    until: float
    samples: list[HostSample]
