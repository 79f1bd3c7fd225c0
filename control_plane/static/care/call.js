// The caregiver's side of a call: camera and microphone, a WebSocket to the control plane
// (signalling relayed to the PC over MQTT), the browser's own RTCPeerConnection. No library.
(function () {
  "use strict";

  var root = document.getElementById("call");
  if (!root) { return; }
  var statusLine = document.getElementById("call-status");
  var remoteVideo = document.getElementById("remote-video");
  var localVideo = document.getElementById("local-video");
  var hangupButton = document.getElementById("hangup");
  var outcomeLink = document.getElementById("outcome-link");
  var messages = JSON.parse(root.getAttribute("data-messages") || "{}");

  var ws = null;
  var pc = null;
  var stream = null;
  var callId = null;
  var statsTimer = null;
  var ended = false;
  // For tests and support: what happened, in order, without scraping the page.
  var state = window.difronteCall = {
    events: [], times: {}, callId: null, ended: null, stats: null, firstFrameMs: null
  };

  function say(text) { statusLine.textContent = text; }
  function note(kind) {
    state.events.push(kind);
    state.times[kind] = performance.now();
    root.setAttribute("data-state", kind);
  }
  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(message)); }
  }

  function finish(reason, text) {
    if (ended) { return; }
    ended = true;
    state.ended = reason;
    note("ended");
    say(text || messages[reason] || messages.error);
    clearInterval(statsTimer);
    if (pc) { pc.close(); }
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    hangupButton.hidden = true;
    if (callId !== null) {
      outcomeLink.href = "/care/calls/" + callId;
      outcomeLink.hidden = false;
      outcomeLink.focus();
    }
  }

  // The figures stored with the call record next to the PC's own.
  function collectStats() {
    if (!pc) { return; }
    pc.getStats().then(function (report) {
      var out = {};
      report.forEach(function (s) {
        if (s.type === "inbound-rtp" && s.kind === "video") {
          out.framesDecoded = s.framesDecoded || 0;
          out.frameWidth = s.frameWidth || 0;
          out.frameHeight = s.frameHeight || 0;
          out.videoBytesReceived = s.bytesReceived || 0;
          out.videoPacketsLost = s.packetsLost || 0;
          out.videoPacketsReceived = s.packetsReceived || 0;
          if (s.framesPerSecond !== undefined) { out.framesPerSecond = s.framesPerSecond; }
        } else if (s.type === "inbound-rtp" && s.kind === "audio") {
          out.audioBytesReceived = s.bytesReceived || 0;
          out.audioPacketsLost = s.packetsLost || 0;
          out.audioPacketsReceived = s.packetsReceived || 0;
        } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          if (s.currentRoundTripTime !== undefined) {
            out.roundTripTimeMs = s.currentRoundTripTime * 1000;
          }
          if (s.availableOutgoingBitrate !== undefined) {
            out.kbpsOut = s.availableOutgoingBitrate / 1000;
          }
        } else if (s.type === "outbound-rtp" && s.kind === "video") {
          out.videoBytesSent = s.bytesSent || 0;
          out.framesEncoded = s.framesEncoded || 0;
        }
      });
      var lost = (out.videoPacketsLost || 0) + (out.audioPacketsLost || 0);
      var got = (out.videoPacketsReceived || 0) + (out.audioPacketsReceived || 0);
      if (lost + got > 0) { out.packetLossPct = 100 * lost / (lost + got); }
      state.stats = out;
      send({ type: "stats", stats: out });
    });
  }

  function startPeer(iceServers) {
    pc = new RTCPeerConnection({ iceServers: iceServers });
    stream.getTracks().forEach(function (track) { pc.addTrack(track, stream); });
    pc.onicecandidate = function (event) {
      send({ type: "candidate", candidate: event.candidate ? event.candidate.toJSON() : null });
    };
    // Milliseconds from the page's start (the click on "Call") to the first frame shown.
    remoteVideo.addEventListener("loadeddata", function () {
      if (state.firstFrameMs === null) { state.firstFrameMs = performance.now(); }
    });
    pc.ontrack = function (event) {
      if (remoteVideo.srcObject !== event.streams[0]) { remoteVideo.srcObject = event.streams[0]; }
    };
    pc.onconnectionstatechange = function () {
      var s = pc.connectionState;
      if (s === "connected") {
        note("connected");
        say(root.getAttribute("data-text-connected"));
        send({ type: "state", state: "connected" });
        statsTimer = setInterval(collectStats, 2000);
        collectStats();
      } else if (s === "failed") {
        send({ type: "state", state: "failed" });
      }
    };
    // The old PC decodes what we send: keep it to its resolution and a modest bitrate.
    pc.getSenders().forEach(function (sender) {
      if (sender.track && sender.track.kind === "video") {
        var params = sender.getParameters();
        params.encodings = params.encodings && params.encodings.length ? params.encodings : [{}];
        params.encodings[0].maxBitrate = 800000;
        sender.setParameters(params).catch(function () { /* not supported: keep defaults */ });
      }
    });
    return pc.createOffer().then(function (offer) {
      return pc.setLocalDescription(offer);
    }).then(function () {
      send({ type: "offer", sdp: pc.localDescription.sdp });
    });
  }

  function onMessage(event) {
    var msg = JSON.parse(event.data);
    if (msg.type === "ready") {
      callId = msg.call_id;
      state.callId = callId;
      note("ready");
      startPeer(msg.ice_servers || []).catch(function () { finish("error"); send({ type: "hangup" }); });
    } else if (msg.type === "ringing") {
      note("ringing");
      say(root.getAttribute("data-text-ringing"));
    } else if (msg.type === "accepted") {
      note("accepted");
      say(root.getAttribute("data-text-accepted"));
    } else if (msg.type === "answer") {
      note("answer");
      pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    } else if (msg.type === "candidate") {
      if (msg.candidate) { pc.addIceCandidate(msg.candidate); }
    } else if (msg.type === "ended") {
      if (msg.call_id !== undefined && msg.call_id !== null) { callId = msg.call_id; }
      finish(msg.reason);
    }
  }

  hangupButton.addEventListener("click", function () {
    send({ type: "hangup" });
    hangupButton.disabled = true;
  });
  window.addEventListener("pagehide", function () { send({ type: "hangup" }); });

  note("camera");
  navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true },
    video: { width: { ideal: 640 }, height: { ideal: 480 } }
  }).then(function (s) {
    stream = s;
    localVideo.srcObject = s;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + window.location.host + root.getAttribute("data-ws"));
    ws.onmessage = onMessage;
    ws.onclose = function () { finish(ended ? state.ended : "dropped"); };
  }).catch(function () {
    finish("media", root.getAttribute("data-text-camera"));
  });
}());
