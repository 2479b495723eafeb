#!/usr/bin/env python3
"""A WHIP publisher on aiortc (an independent WebRTC stack), for webrtcsrc's tests.

Publishes a 320x240 picture of four coloured quadrants (red, green, blue, white; a small
square moves along the top so consecutive frames differ) and a 1 kHz tone, by WHIP: POST the
offer to URL, apply the answer, send for SECONDS, then DELETE the session unless --vanish
(then it just stops, as a closed tab does). Prints one JSON line: the POST status, Location,
the DELETE status, and the frames sent.

usage: whip_publish.py URL SECONDS [--codec vp8|h264] [--no-audio] [--vanish]
"""

import argparse
import asyncio
import fractions
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

WIDTH, HEIGHT, FPS = 320, 240, 30
QUADRANTS = [(230, 20, 20), (20, 210, 20), (20, 20, 230), (235, 235, 235)]


class Quadrants(MediaStreamTrack):
    kind = "video"

    def __init__(self):
        super().__init__()
        self.count = 0
        self.start = None
        rows = []
        for y in range(HEIGHT):
            row = bytearray()
            for x in range(WIDTH):
                q = (1 if x >= WIDTH // 2 else 0) + (2 if y >= HEIGHT // 2 else 0)
                row += bytes(QUADRANTS[q])
            rows.append(bytes(row))
        self.rows = rows

    async def recv(self):
        loop = asyncio.get_event_loop()
        if self.start is None:
            self.start = loop.time()
        target = self.start + self.count / FPS
        delay = target - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame(WIDTH, HEIGHT, "rgb24")
        plane = frame.planes[0]
        pad = plane.line_size - WIDTH * 3
        # A 16x16 black square moving along the top rows (inside the red quadrant's top).
        sx = (self.count * 4) % (WIDTH // 2 - 16)
        data = bytearray()
        for y, row in enumerate(self.rows):
            if y < 16:
                r = bytearray(row)
                r[sx * 3:(sx + 16) * 3] = bytes(16 * 3)
                data += r
            else:
                data += row
            data += bytes(pad)
        plane.update(bytes(data))
        frame.pts = self.count * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self.count += 1
        return frame


class Tone(MediaStreamTrack):
    kind = "audio"

    def __init__(self):
        super().__init__()
        self.samples = 0
        self.start = None

    async def recv(self):
        loop = asyncio.get_event_loop()
        if self.start is None:
            self.start = loop.time()
        target = self.start + self.samples / 48000
        delay = target - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        n = 960
        frame = av.AudioFrame(format="s16", layout="stereo", samples=n)
        out = bytearray()
        for i in range(n):
            v = int(16000 * math.sin(2 * math.pi * 1000 * (self.samples + i) / 48000))
            b = v.to_bytes(2, "little", signed=True)
            out += b + b
        frame.planes[0].update(bytes(out))
        frame.sample_rate = 48000
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, 48000)
        self.samples += n
        return frame


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
    parser.add_argument("seconds", type=float)
    parser.add_argument("--codec", default="vp8", choices=["vp8", "h264"])
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--vanish", action="store_true")
    args = parser.parse_args()

    pc = RTCPeerConnection()
    video = Quadrants()
    transceiver = pc.addTransceiver(video, direction="sendonly")
    mime = "video/VP8" if args.codec == "vp8" else "video/H264"
    codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == mime]
    transceiver.setCodecPreferences(codecs)
    if not args.no_audio:
        pc.addTransceiver(Tone(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_event_loop()
    status, headers, answer = await loop.run_in_executor(
        None, http, "POST", args.url, pc.localDescription.sdp.encode(), "application/sdp"
    )
    result = {"post": status, "location": headers.get("Location"), "body": answer[:300]}
    if status != 201:
        print(json.dumps(result), flush=True)
        await pc.close()
        return 0
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await asyncio.sleep(args.seconds)
    result["frames_sent"] = video.count
    result["connection"] = pc.connectionState
    if args.vanish:
        # Like a tab that crashed: no DELETE, no goodbye, the packets just stop.
        result["delete"] = None
        print(json.dumps(result), flush=True)
        os._exit(0)
    else:
        resource = urllib.parse.urljoin(args.url, headers.get("Location", ""))
        result["delete"] = (await loop.run_in_executor(None, http, "DELETE", resource))[0]
    await pc.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
