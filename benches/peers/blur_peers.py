"""OpenCV's GaussianBlur((0, 0), sigma) on a 1080x1920 RGBA frame: CPU ms per frame.

Called by blur_peers.sh; prints one line per thread setting and output mode:
    opencv threads=<n> <mode> <cpu ms per frame> <wall ms per frame>
where mode is `new` (`dst = cv2.GaussianBlur(src, (0, 0), sigma)`: a fresh 8 MB array per
call, as the one-liner does) or `reuse` (`dst=` given: no allocation, as streamlib's pooled
output). CPU time is time.process_time() (all threads of the process, user + system).
"""

import sys
import time

import cv2
import numpy as np


def measure(threads, reuse, iterations, sigma):
    cv2.setNumThreads(threads)
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, size=(1080, 1920, 4), dtype=np.uint8)
    dst = np.empty_like(src)

    def blur():
        if reuse:
            cv2.GaussianBlur(src, (0, 0), sigma, dst=dst)
        else:
            cv2.GaussianBlur(src, (0, 0), sigma)

    for _ in range(10):  # warm-up: page in buffers, start OpenCV's threads
        blur()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(iterations):
        blur()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / iterations * 1e3, wall / iterations * 1e3


def main():
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    sigma = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    default_threads = cv2.getNumThreads()
    for threads in (1, default_threads):
        for reuse in (False, True):
            cpu, wall = measure(threads, reuse, iterations, sigma)
            mode = "reuse" if reuse else "new"
            print(f"opencv threads={threads} {mode} {cpu:.3f} {wall:.3f}")


if __name__ == "__main__":
    main()
