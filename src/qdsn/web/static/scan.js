// The verify page's camera, on top of a page that works without it (a photo of the QR code is sent with
// the form): frames of the camera are read for a QR code by the browser's own BarcodeDetector where it
// has one, else by this node (POST /console/verify/scan); what the code carries is then sent to be
// verified exactly as if it had been pasted. Nothing is loaded from elsewhere.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("scan"), form = document.getElementById("verify");
  const media = navigator.mediaDevices;
  if (!box || !form || !media || !media.getUserMedia || !window.isSecureContext) return;  // the photo it is
  const start = document.getElementById("scan-start"), stop = document.getElementById("scan-stop");
  const video = document.getElementById("scan-video"), said = document.getElementById("scan-said");
  const csrf = form.querySelector("input[name=csrf]").value;
  const canvas = document.createElement("canvas");
  const LONGEST = 1280;  // a frame sent to the node: large enough for a dense code, small to send
  let stream = null, timer = null, detector = null;
  box.hidden = false;

  const end = () => {
    clearTimeout(timer);
    timer = null;
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    video.hidden = stop.hidden = true;
    start.hidden = false;
  };
  const found = (text) => {
    end();
    said.textContent = box.dataset.found;
    form.querySelector("textarea[name=presentation]").value = text;
    for (const input of form.querySelectorAll("input[type=file]")) input.value = "";
    form.requestSubmit ? form.requestSubmit() : form.submit();
  };
  const next = (ms) => { if (stream) timer = setTimeout(look, ms); };
  const frame = () => new Promise((resolve) => {
    const scale = Math.min(1, LONGEST / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob(resolve, "image/jpeg", 0.9);
  });

  async function look() {
    if (!stream) return;
    if (!video.videoWidth) { next(200); return; }  // no frame yet
    if (detector) {
      try {
        const codes = await detector.detect(video);
        if (codes.length === 1) { found(codes[0].rawValue); return; }
      } catch (e) { detector = null; }  // the node reads the frames instead
      next(250);
      return;
    }
    const body = new FormData();
    body.append("picture", await frame(), "frame.jpg");
    let r, answer = {};
    try {
      r = await fetch("/console/verify/scan", {method: "POST", body, credentials: "same-origin",
                                                headers: {"X-CSRF-Token": csrf}});
      if ((r.headers.get("content-type") || "").includes("json")) answer = await r.json();
    } catch (e) { next(1000); return; }  // the node did not answer: try again shortly
    if (!stream) return;
    if (r.ok) { found(answer.text); return; }
    if (r.status === 429) { next(1000 * (Number(r.headers.get("Retry-After")) || 1)); return; }
    if (r.status === 422) {
      said.textContent = answer.none ? box.dataset.looking : answer.error;
      next(400);
      return;
    }
    said.textContent = answer.error || r.statusText;  // refused (the page is out of date): stop
    end();
  }

  start.addEventListener("click", async () => {
    try {
      stream = await media.getUserMedia({video: {facingMode: "environment"}, audio: false});
    } catch (e) {
      said.textContent = box.dataset.denied;
      return;
    }
    if ("BarcodeDetector" in window) {
      try {
        if ((await window.BarcodeDetector.getSupportedFormats()).includes("qr_code")) {
          detector = new window.BarcodeDetector({formats: ["qr_code"]});
        }
      } catch (e) { detector = null; }
    }
    video.srcObject = stream;
    video.hidden = stop.hidden = false;
    start.hidden = true;
    said.textContent = box.dataset.looking;
    try { await video.play(); } catch (e) { /* muted and inline: plays on its own once frames come */ }
    look();
  });
  stop.addEventListener("click", () => { end(); said.textContent = ""; });
  window.addEventListener("pagehide", end);
});
