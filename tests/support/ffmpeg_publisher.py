"""FFmpeg's WHIP muxer as a publisher, through the libavformat in PyAV's wheels.

The muxer does its HTTP and DTLS handshake inside ``avformat_write_header``, which PyAV
calls with the GIL held, so it would stall an event loop sharing the process (and the
server it talks to): it runs in a child process, the way a user runs ``ffmpeg -f whip``.

    cert, key = write_p256_certificate(tmp_path)
    run = await run_ffmpeg_whip(url, token, seconds=5, cert=cert, key=key)

The options are the muxer's own: ``authorization`` (sent as ``Authorization: Bearer``),
``cert_file``/``key_file`` (PEM; without them FFmpeg makes a P-224 certificate).
"""

from __future__ import annotations

import asyncio
import datetime
import fractions
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RUN_TIMEOUT_SLACK = 60.0  # handshake + start-up on a busy machine: a hang guard only


@dataclass(frozen=True)
class FfmpegRun:
    returncode: int
    output: str  # stdout and stderr, FFmpeg's log included


def write_p256_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate and key, as `openssl req -x509` would make."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ffmpeg-whip")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "whip.crt", directory / "whip.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def run_ffmpeg_whip(url: str, token: str | None, seconds: float,
                          cert: Path | None = None, key: Path | None = None) -> FfmpegRun:
    args = [sys.executable, "-m", "tests.support.ffmpeg_publisher", url, str(seconds)]
    if token:
        args += ["--option", f"authorization={token}"]
    if cert is not None and key is not None:
        args += ["--option", f"cert_file={cert}", "--option", f"key_file={key}"]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), seconds + RUN_TIMEOUT_SLACK)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
    return FfmpegRun(process.returncode or 0, out.decode(errors="replace"))


def publish(url: str, seconds: float, options: dict[str, str]) -> int:
    """H.264 (constrained baseline, no B-frames) and Opus in real time; returns frames sent."""
    import av
    import av.logging
    import numpy as np

    av.logging.set_level(av.logging.INFO)
    width, height, fps = 640, 360, 30
    out = av.open(url, "w", format="whip", options=options)
    video = out.add_stream("libx264", rate=fps, options={
        "profile": "baseline", "tune": "zerolatency", "preset": "ultrafast", "bf": "0",
        "g": str(fps)})
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    audio = out.add_stream("libopus", rate=48000)
    audio.layout = "stereo"
    audio.bit_rate = 64000
    picture = np.full((height, width, 3), 90, dtype=np.uint8)
    tone = (0.1 * np.sin(np.arange(48000) * 2 * np.pi * 440 / 48000)).astype(np.float32)
    start = time.monotonic()
    n = samples = 0
    while time.monotonic() - start < seconds:
        x = (n * 8) % (width - 40)
        frame_picture = picture.copy()
        frame_picture[:, x:x + 40] = 220
        frame = av.VideoFrame.from_ndarray(frame_picture, format="rgb24")
        frame.pts, frame.time_base = n, fractions.Fraction(1, fps)
        out.mux(video.encode(frame))
        while samples < (n + 1) * 48000 // fps:
            chunk = tone[np.arange(samples, samples + 960) % 48000]
            audio_frame = av.AudioFrame.from_ndarray(np.repeat(chunk, 2).reshape(1, -1),
                                                     format="flt", layout="stereo")
            audio_frame.sample_rate = 48000
            audio_frame.pts, audio_frame.time_base = samples, fractions.Fraction(1, 48000)
            out.mux(audio.encode(audio_frame))
            samples += 960
        n += 1
        time.sleep(max(0.0, start + n / fps - time.monotonic()))
    out.mux(video.encode(None))
    out.mux(audio.encode(None))
    out.close()
    return n


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Publish a test pattern with FFmpeg's WHIP muxer")
    parser.add_argument("url")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--option", action="append", default=[],
                        help="a WHIP muxer option, name=value")
    args = parser.parse_args()
    options = dict(item.split("=", 1) for item in args.option)
    frames = publish(args.url, args.seconds, options)
    print(f"published {frames} video frames to {args.url}")


if __name__ == "__main__":
    main()
