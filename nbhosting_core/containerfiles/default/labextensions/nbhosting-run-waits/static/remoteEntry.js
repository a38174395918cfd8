// nbhosting-run-waits: a prebuilt JupyterLab / Notebook 7 extension, written by hand (no build step, no dependency).
//
// Why: the notebook shows its cells (and its execution indicator says "idle": its initial state) before its session
// has a kernel; a cell run in that window is dropped without a word by CodeCell.execute (no [*], no output). The
// window lasts from the notebook's content arriving to its session being connected (a checkpoint, the sessions'
// list, maybe a kernel start): ~0.3-1 s, more on a slow link, and a fast student's first Shift-Enter lands in it.
//
// What: every "run" command asked while the current document's session is still initialising waits for the session
// to be ready (its kernel chosen, started or found), then runs as asked. At most WAIT_MS: then it runs anyway, as it
// would have. Nothing else changes: a session that has a kernel, or has none by choice ("No Kernel"), runs at once.
//
// The container protocol is webpack's module federation, as JupyterLab loads prebuilt extensions: a global
// _JUPYTERLAB[name] with get(module) -> Promise<factory> and init(shareScope). This one shares no module.
var _JUPYTERLAB;
(function () {
  "use strict";
  var NAME = "nbhosting-run-waits";
  var WAIT_MS = 30000;
  var RUN = /^(notebook:run-|notebook:restart-run|runmenu:run|console:run)/;

  function initialising(widget) {
    var context = widget && widget.sessionContext;
    if (!context || context.isDisposed || context.isReady) {
      return null;
    }
    if (context.session && context.session.kernel) {
      return null;
    }
    return context;
  }

  var plugin = {
    id: NAME + ":plugin",
    description: "A cell run before the kernel is connected waits for it instead of being dropped.",
    autoStart: true,
    activate: function (app) {
      var commands = app.commands;
      var execute = commands.execute.bind(commands);
      commands.execute = function (id, args) {
        var context = RUN.test(String(id)) ? initialising(app.shell.currentWidget) : null;
        if (context === null) {
          return execute(id, args);
        }
        var waited = new Promise(function (resolve) {
          setTimeout(resolve, WAIT_MS);
        });
        return Promise.race([context.ready, waited]).then(
          function () {
            return execute(id, args);
          },
          function () {
            return execute(id, args);
          }
        );
      };
    },
  };

  var modules = {
    "./extension": function () {
      return Promise.resolve(function () {
        return { __esModule: true, default: [plugin] };
      });
    },
  };
  modules["./index"] = modules["./extension"];

  _JUPYTERLAB = _JUPYTERLAB === undefined ? {} : _JUPYTERLAB;
  _JUPYTERLAB[NAME] = {
    get: function (module) {
      var get = modules[module];
      return get ? get() : Promise.reject(new Error("Module " + module + " does not exist in " + NAME));
    },
    init: function () {},
  };
})();
