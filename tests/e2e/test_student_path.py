"""What students can do, in origin mode ``path``: the same tests, the routes under each server's path."""

from tests.e2e.test_student import (  # noqa: F401 - collected here again, in this module's origin mode
    test_a_student_downloads_their_workspace_and_another_students_cookie_is_refused,
    test_a_student_shares_anyone_reads_it_inert_and_revoking_makes_it_404,
    test_the_notebook_ui_has_a_my_work_menu_and_a_course_copy_opens_trusted,
)

ORIGIN_MODE = "path"
