// The app's page script (added to <head> by `launch_options`).
// 1. Live webcam: the latency from capture to label, measured where both happen (the page).
//    Gradio's webcam captures a stream frame with canvas.toDataURL("image/jpeg"); the server
//    processes the newest frame it holds once the previous one is done (frames that arrive
//    meanwhile are dropped), so the frame behind a label update is the newest capture before
//    the previous update (or the first one after it). Shown in #live-latency.
// 2. Latent explorer: a click on a point writes its index into the hidden #point-clicked box,
//    which picks the point (customdata[0] of every explorer trace is the point's index).
(() => {
  const captures = [];
  const original = HTMLCanvasElement.prototype.toDataURL;
  HTMLCanvasElement.prototype.toDataURL = function (...args) {
    const out = original.apply(this, args);
    if (args[0] === "image/jpeg") {
      captures.push(performance.now());
      if (captures.length > 300) captures.shift();
    }
    return out;
  };
  const latencies = [];
  let previous = null;
  let used = -Infinity;
  let lastText = "";
  const updates = [];
  window.emoclipLatencies = latencies;
  window.emoclipCaptures = captures;
  window.emoclipUpdates = updates;
  function onLiveUpdate() {
    const now = performance.now();
    updates.push(now);
    if (updates.length > 300) updates.shift();
    if (previous !== null) {
      let frame = null;
      for (const t of captures) if (t <= previous && t > used) frame = t;
      if (frame === null) frame = captures.find((t) => t > previous && t < now) ?? null;
      if (frame !== null) {
        used = frame;
        latencies.push(now - frame);
        if (latencies.length > 30) latencies.shift();
      }
    }
    previous = now;
    const box = document.querySelector("#live-latency");
    if (box && latencies.length) {
      const sorted = [...latencies].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)];
      box.textContent = `Capture to label: ${Math.round(median)} ms (median of the last ${sorted.length} frames, measured in this page)`;
    }
  }
  function attachPlotClick() {
    const plot = document.querySelector("#latent-plot .js-plotly-plot");
    if (!plot || plot.emoclipClick || typeof plot.on !== "function") return;
    plot.emoclipClick = true;
    plot.on("plotly_click", (event) => {
      const point = event && event.points && event.points[0];
      if (!point || !point.customdata) return;
      const box = document.querySelector("#point-clicked textarea, #point-clicked input");
      if (!box) return;
      box.value = String(point.customdata[0]) + "@" + Date.now();
      box.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }
  function tick() {
    const info = document.querySelector("#live-fps");
    const frame = info && /frame #(\d+)/.exec(info.innerText);
    if (frame && frame[1] !== lastText) {
      lastText = frame[1];
      onLiveUpdate();
    }
    attachPlotClick();
  }
  const start = () => new MutationObserver(tick).observe(document.body, { subtree: true, childList: true, characterData: true });
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
