// A tiny WHEP client (RFC 9725) for streamlib's webrtcsink, served by the sink at /whep.js.
//
//   const session = await whepPlay("http://127.0.0.1:8889/whep", videoElement);
//   ...
//   await session.stop();   // DELETE on the session resource, closes the peer connection
//
// It offers to receive one video and one audio track, waits for ICE gathering (a host-only
// offer on loopback completes at once), POSTs the offer as application/sdp and applies the
// answer. Candidates found after the offer are trickled with PATCH
// (application/trickle-ice-sdpfrag) to the session's Location.
"use strict";

async function whepPlay(url, video, options) {
  const opts = options || {};
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  if (opts.audio !== false) {
    pc.addTransceiver("audio", { direction: "recvonly" });
  }
  const stream = new MediaStream();
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    if (video && video.srcObject !== stream) {
      video.srcObject = stream;
      video.muted = true;
      const playing = video.play();
      if (playing && playing.catch) {
        playing.catch(() => {});
      }
    }
  };
  let location = null;
  const early = [];
  const trickle = async (candidate) => {
    if (!location) {
      early.push(candidate);
      return;
    }
    const frag = candidate
      ? "a=mid:" + candidate.sdpMid + "\r\na=" + candidate.candidate + "\r\n"
      : "a=end-of-candidates\r\n";
    try {
      await fetch(location, {
        method: "PATCH",
        headers: { "Content-Type": "application/trickle-ice-sdpfrag" },
        body: frag,
      });
    } catch (e) {
      // Trickle is best effort: the host candidates are in the offer already.
    }
  };
  pc.onicecandidate = (event) => {
    trickle(event.candidate);
  };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  // Up to a second for host candidates, so that most of them travel in the offer.
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") {
      resolve();
      return;
    }
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, opts.gatherMs || 1000);
  });
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) {
    const text = await response.text();
    pc.close();
    throw new Error("WHEP offer refused: " + response.status + " " + text);
  }
  const answer = await response.text();
  location = new URL(response.headers.get("Location"), url).toString();
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  for (const c of early.splice(0)) {
    trickle(c);
  }
  return {
    pc: pc,
    stream: stream,
    location: location,
    stop: async () => {
      pc.close();
      try {
        await fetch(location, { method: "DELETE" });
      } catch (e) {
        // The server drops the session on ICE timeout anyway.
      }
    },
  };
}

if (typeof window !== "undefined") {
  window.whepPlay = whepPlay;
}
