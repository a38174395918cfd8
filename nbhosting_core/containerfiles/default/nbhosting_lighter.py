"""nbhosting: what the first UI of every student's server loads and keeps for good, answered from files made when
the image was built (loaded by Jupyter as an extra service: ``ServerApp.extra_services`` in the image's config).

* ``GET /api/nbconvert`` (the UI's "Save and Export Notebook As…" menu asks it at every page load) imports
  nbconvert, every exporter and their dependencies (pygments, bleach, bs4, mistune...) to list them: ~7 MiB per
  server kept for its whole life. The list is the image's, so it is computed once, at build time. Exporting still
  works: ``/nbconvert/<format>/...`` imports nbconvert when a student exports.
* JupyterLab's translations list names each language through babel, whose locale data (~4 MiB) then stays; the
  names are the image's too, computed once.

Without the files (this module run elsewhere), Jupyter's own behaviour stays.
"""

import json
import os

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

BUILT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nbhosting_lighter.json")

try:
    with open(BUILT) as built:
        _BUILT = json.load(built)
except (OSError, ValueError):
    _BUILT = {}


def _exporters():
    """The exporters' list as Jupyter's own handler makes it (nbconvert imported: at build time, or without a file)."""
    from nbconvert.exporters import base

    exporters = {}
    for name in base.get_export_names():
        try:
            exporters[name] = {"output_mimetype": base.get_exporter(name).output_mimetype}
        except ValueError:
            continue
    return exporters


class ExportersHandler(APIHandler):
    """The exporters' list as the image was built with them (Jupyter's own handler's answer; its permission).

    Not a subclass of Jupyter's own: its module imports anyio, which the server would then load at every start.
    """

    auth_resource = "nbconvert"

    @web.authenticated
    @authorized
    def get(self):
        self.finish(json.dumps(_BUILT["exporters"] if "exporters" in _BUILT else _exporters()))


def _names_from_the_build():
    from jupyterlab_server import translation_utils

    names = _BUILT.get("display_names") or {}
    original = translation_utils.get_display_name

    def get_display_name(locale_, display_locale=translation_utils.DEFAULT_LOCALE):
        return names.get(locale_, {}).get(display_locale) or original(locale_, display_locale)

    translation_utils.get_display_name = get_display_name


def build():
    """What the image's build step writes next to this module (run at build time only)."""
    from jupyterlab_server import translation_utils

    exporters = _exporters()
    locales = sorted({translation_utils.DEFAULT_LOCALE, *translation_utils._get_installed_language_pack_locales()[0]})
    names = {loc: {disp: translation_utils.get_display_name(loc, disp) for disp in locales} for loc in locales}
    with open(BUILT, "w") as out:
        json.dump({"exporters": exporters, "display_names": names}, out, indent=1)
    print(f"nbhosting: {len(exporters)} exporters and {len(locales)} languages' names in {BUILT}")


_names_from_the_build()
default_handlers = [(r"/api/nbconvert", ExportersHandler)]

if __name__ == "__main__":
    build()
