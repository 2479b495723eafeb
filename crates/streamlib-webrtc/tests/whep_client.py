#!/usr/bin/env python3
"""A WHEP viewer on aiortc (an independent WebRTC stack) for the webrtcsink tests.

    whep_client.py URL [--frames N] [--timeout S] [--no-audio] [--hold S] [--no-delete]

POSTs a recvonly offer (video, and audio unless --no-audio) to URL, receives until N video
frames arrived (or the timeout), samples the colours of the seven SMPTE top bars from the
last frame (centre of each bar at a third of the height), DELETEs the session, and prints
one JSON object on stdout:

    {"status": 201, "frames": N, "width": W, "height": H, "bars": [[r,g,b] x 7],
     "audio_frames": A, "audio_rate": 48000, "location": "...", "fps": F,
     "delete_status": 200}

With --hold S it keeps receiving for S more seconds after N frames (for tests that end
another viewer meanwhile) and reports frames received during the hold as "hold_frames".
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription


def http(method, url, body=None, content_type=None):
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--no-delete", action="store_true")
    args = parser.parse_args()

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    if not args.no_audio:
        pc.addTransceiver("audio", direction="recvonly")

    result = {"frames": 0, "audio_frames": 0, "hold_frames": 0}
    done = asyncio.Event()
    state = {"last": None, "first_at": None, "last_at": None, "holding": False}

    async def read_video(track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            now = time.monotonic()
            if state["first_at"] is None:
                state["first_at"] = now
            state["last_at"] = now
            if state["holding"]:
                result["hold_frames"] += 1
                continue
            result["frames"] += 1
            state["last"] = frame
            if result["frames"] >= args.frames:
                done.set()

    async def read_audio(track):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            result["audio_frames"] += 1
            result["audio_rate"] = frame.sample_rate

    tasks = []

    @pc.on("track")
    def on_track(track):
        if track.kind == "video":
            tasks.append(asyncio.ensure_future(read_video(track)))
        else:
            tasks.append(asyncio.ensure_future(read_audio(track)))

    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, headers, body = await loop.run_in_executor(
        None, http, "POST", args.url, pc.localDescription.sdp.encode(), "application/sdp"
    )
    result["status"] = status
    if status != 201:
        result["error"] = body
        print(json.dumps(result))
        await pc.close()
        return
    location = urllib.parse.urljoin(args.url, headers.get("Location", ""))
    result["location"] = location
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))

    try:
        await asyncio.wait_for(done.wait(), timeout=args.timeout)
    except asyncio.TimeoutError:
        result["timed_out"] = True
    if state["first_at"] is not None and state["last_at"] > state["first_at"]:
        result["fps"] = (result["frames"] - 1) / (state["last_at"] - state["first_at"])
    frame = state["last"]
    if frame is not None:
        result["width"] = frame.width
        result["height"] = frame.height
        # PyAV without numpy: the rgb24 plane's bytes and stride.
        plane = frame.reformat(format="rgb24").planes[0]
        data, stride = bytes(plane), plane.line_size
        y = frame.height // 3
        bars = []
        for i in range(7):
            x = (2 * i + 1) * frame.width // 14
            # Mean of a 5x5 patch: one pixel of a lossy stream is noisy.
            sums = [0, 0, 0]
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    at = (y + dy) * stride + (x + dx) * 3
                    for c in range(3):
                        sums[c] += data[at + c]
            bars.append([round(v / 25) for v in sums])
        result["bars"] = bars
    if args.hold > 0:
        state["holding"] = True
        await asyncio.sleep(args.hold)
    if not args.no_delete:
        status, _, _ = await loop.run_in_executor(None, http, "DELETE", location)
        result["delete_status"] = status
    await pc.close()
    for task in tasks:
        task.cancel()
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
