/// The console's own style and script, served from /static (never inline:
/// the CSP allows neither).
enum StaticText {
    static let css = """
    body { font-family: system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
    header { background: #23395d; color: #fff; padding: .6em 1.2em; display: flex; align-items: center; gap: 2em; flex-wrap: wrap; }
    header h1 { font-size: 1.2em; margin: 0; }
    header a { color: #fff; margin-right: 1em; }
    nav { display: flex; align-items: center; gap: 1em; flex-wrap: wrap; }
    .who { opacity: .85; }
    form.inline { display: inline; }
    main { padding: 1em 1.5em; }
    table { border-collapse: collapse; margin: .5em 0 1.5em; background: #fff; }
    th, td { border: 1px solid #ccd; padding: .3em .5em; text-align: left; vertical-align: top; font-size: .92em; }
    th { background: #eef; }
    label { display: inline-block; margin: .3em .8em .3em 0; }
    .notice { padding: .5em .8em; border-radius: 4px; }
    .notice.error { background: #fde2e1; }
    .notice.ok { background: #ddf5e0; }
    .notice.info { background: #e8eefc; }
    pre#transcript-text { background: #111; color: #eee; padding: .8em; max-height: 30em; overflow: auto; white-space: pre-wrap; }
    #chain-result.ok { color: #17632a; font-weight: bold; }
    #chain-result.failed { color: #a01616; font-weight: bold; }
    #player { max-width: 60em; margin-bottom: 1em; }
    """

    /// Starts asciinema's player on the transcript's element, if the player
    /// is installed; the escaped text beside it stays either way.
    static let script = """
    "use strict";
    document.addEventListener("DOMContentLoaded", function () {
      var el = document.getElementById("player");
      if (!el || !window.AsciinemaPlayer) { return; }
      var src = el.getAttribute("data-cast");
      if (!src || src.charAt(0) !== "/") { return; }
      window.AsciinemaPlayer.create(src, el, { autoPlay: true, speed: 4, idleTimeLimit: 1, fit: "width", controls: true });
    });
    """
}
