// The live session page's entry (templates/sessions/live.html): stream the camera to the server
// and show what it says back. The code is in the ES modules of static/js/live/ (no build step):
//   main.js      the wiring: the page's buttons, keys and lifecycle
//   state.js     the configuration, plan, state, timers and elements the others share
//   socket.js    the WebSocket, its messages both ways, reconnecting (sessions/protocol.py)
//   camera.js    getUserMedia, capturing and encoding frames, the send rate
//   skeleton.js  the skeleton drawn over the video
//   readouts.js  counters, angle against target, timers, notices, spoken cues
//   summary.js   the summary once the session has ended
//
// Why a dynamic import: this small file then runs as soon as it arrives, and "Start camera"
// answers from that moment. With static imports the button would stay dead until every module
// had come, one request each, and a press in that time would be lost (the browser tests press it
// at once). A press before the modules are here starts the camera when they are.
// The modules name each other relatively, one statement each ending in a semicolon, without
// cycles: collectstatic then rewrites the names to the hashed ones (web/storage.py), which a
// cycle would keep from settling.

const modules = import("./live/main.js");
modules.then((main) => main.init());

// One start at a time: until the modules are here nothing has disabled the button yet.
let starting = null;
document.getElementById("start-camera").addEventListener("click", () => {
  starting ??= modules.then((main) => main.startCamera()).finally(() => {
    starting = null;
  });
});
