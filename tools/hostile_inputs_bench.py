"""Memory of the editor under issue 32's hostile and largest legal maps -> a benchmark JSON.

    .venv/bin/python tools/hostile_inputs_bench.py [--code DIR --label NAME] [--out JSON]

For each input, `python -m stages.edit` (a fresh process: its peak RSS, ru_maxrss, minus the
same command's on an 8x8 map) and the editor server (`stages.serve --editor`, uploads only: its
VmHWM after the request minus after a warm-up edit) with the released model
models/mexgan-cityscapes/seed0 and a full-map box. --code runs another checkout (e.g. the code
before issue 32, `git archive 63c4453`); results are merged into --out under --label."""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "models/mexgan-cityscapes/seed0"


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_zeros(width, height, colour_type=2, depth=8) -> bytes:
    """A real PNG of zero pixels, compressed row by row (tiny file, large frame)."""
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    row = bytes(1 + (width * channels * depth + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)) +
            chunk(b"IDAT", data) + chunk(b"IEND", b""))


def ico(png: bytes) -> bytes:
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png),
                                                      22) + png


def street_map(width, height, palette) -> np.ndarray:
    """A colour map in the palette: road, sidewalk, building bands and a few cars."""
    ids = np.full((height, width), 11, np.uint8)  # building
    ids[height // 2:] = 7                          # road
    ids[height // 2: height // 2 + height // 16] = 8  # sidewalk
    for k in range(6):
        x = k * width // 6
        ids[height * 5 // 8: height * 3 // 4, x + width // 40: x + width // 12] = 26  # car
    return palette[ids]


def inputs(folder: str, palette) -> dict:
    from PIL import Image
    files = {}

    def save(name, data=None, array=None, **kw):
        path = os.path.join(folder, name)
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        else:
            Image.fromarray(array).save(path, **kw)
        files[name] = path

    save("tiny_8x8.png", array=np.full((8, 8), 7, np.uint8))
    save("ico_13000x13000.ico.png", data=ico(png_zeros(13000, 13000, 6)))
    bits = Image.fromarray(np.zeros((4096, 4096), np.uint8)).convert("1")
    buffer = io.BytesIO()
    bits.save(buffer, format="PNG")
    save("ids_4096x4096_1bit.png", data=buffer.getvalue())
    save("colour_2048x1024.png", array=street_map(2048, 1024, palette))
    save("colour_4096x4096.png", array=street_map(4096, 4096, palette))
    save("ids_1x16777216.png", data=png_zeros(1, 16_777_216, 0, 1))
    return files


def cli_peak_mb(code, path, box, out) -> tuple:
    env = dict(os.environ, PYTHONPATH=code, OMP_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c",
                           "import resource, runpy, sys\n"
                           "sys.argv = ['stages.edit'] + sys.argv[1:]\n"
                           "try:\n    runpy.run_module('stages.edit', run_name='__main__')\n"
                           "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
                           "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
                           "file=sys.stderr)\nsys.exit(code)\n",
                           os.path.join(code, MODEL), path, "--edit", box, "car", "--out", out],
                          cwd=code, env=env, capture_output=True, text=True)
    del before
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK")]
    last = [line for line in done.stderr.splitlines() if not line.startswith("PEAK")]
    return (int(peak[-1].split()[1]) / 1024 if peak else None, done.returncode,
            (last[-1] if last else done.stdout.strip().splitlines()[-1])[:200])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hwm_mb(pid) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM:")).split()[1]) / 1024


def editor_runs(code, files, cases) -> dict:
    import httpx
    port = free_port()
    env = dict(os.environ, PYTHONPATH=code, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "stages.serve", "--editor", "--editor-row",
                                MODEL, "--data", "/nonexistent", "--port", str(port)], cwd=code,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "no server"
                time.sleep(0.2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
            def post(name, box):
                with open(files[name], "rb") as f:
                    upload = base64.b64encode(f.read()).decode()
                return c.post("/api/editor/edit", json={"upload": upload, "box": box,
                                                        "label": "car"})
            post("tiny_8x8.png", [0, 0, 8, 8])
            idle = hwm_mb(process.pid)
            for name, box in cases:  # in increasing cost: VmHWM only grows
                answer = post(name, box)
                out[name] = {"status": answer.status_code,
                             "answer": (answer.json().get("error") if answer.status_code >= 400
                                        else "edited"),
                             "peak_over_idle_mb": round(hwm_mb(process.pid) - idle, 1)}
                idle = max(idle, hwm_mb(process.pid))  # later cases: growth past this peak
    finally:
        process.terminate()
        process.wait(30)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default=HERE)
    parser.add_argument("--label", default="after")
    parser.add_argument("--out", default=os.path.join(HERE, "reports", "hostile_inputs.json"))
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from pipeline.data.datasets import get_spec
    palette = get_spec("cityscapes").palette
    cases = [("ico_13000x13000.ico.png", "0,0,256,256"),
             ("ids_1x16777216.png", "0,0,1,16777216"),
             ("colour_2048x1024.png", "0,0,2048,1024"),
             ("ids_4096x4096_1bit.png", "0,0,4096,4096"),
             ("colour_4096x4096.png", "0,0,4096,4096")]
    with tempfile.TemporaryDirectory() as folder:
        files = inputs(folder, palette)
        idle, _, _ = cli_peak_mb(args.code, files["tiny_8x8.png"], "0,0,8,8",
                                 os.path.join(folder, "out"))
        cli = {"idle_peak_mb": round(idle, 1)}
        for name, box in cases:
            peak, status, line = cli_peak_mb(args.code, files[name], box,
                                             os.path.join(folder, "out"))
            side = os.path.join(folder, "out", "side_by_side.png")
            size = None
            if status == 0 and os.path.exists(side):
                with open(side, "rb") as f:  # the IHDR: it may be too large for PIL to open
                    size = list(struct.unpack(">II", f.read(24)[16:24]))
            cli[name] = {"exit": status, "answer": line, "side_by_side": size,
                         "peak_over_idle_mb": None if peak is None else round(peak - idle, 1)}
            print(args.label, "cli", name, cli[name], flush=True)
        boxes = {name: [int(v) for v in box.split(",")] for name, box in cases}
        editor = editor_runs(args.code, files, [(n, boxes[n]) for n, _ in cases])
        print(args.label, "editor", editor, flush=True)
    report = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            report = json.load(f)
    report.setdefault("what", "peak RSS over the idle process (MB) of python -m stages.edit and "
                              "of the editor server (VmHWM) on issue 32's inputs, a full-map "
                              "box, model " + MODEL + "; tools/hostile_inputs_bench.py")
    report[args.label] = {"code": os.path.abspath(args.code), "stages_edit": cli,
                          "editor_server": editor,
                          "machine": f"{os.cpu_count()} cores, {sys.platform}",
                          "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
