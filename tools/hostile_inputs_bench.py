"""Memory of the editor under issue 32's hostile and largest legal maps -> a benchmark JSON.

    .venv/bin/python tools/hostile_inputs_bench.py [--code DIR --label NAME] [--out JSON]

For each input and each released model (models/mexgan-cityscapes/seed0, the colour editor at
64x32, and models/twosm-full-cityscapes/seed0, which draws at the map's own resolution),
`python -m stages.edit` and the editor server (`stages.serve --editor`, uploads only), each
in a fresh process, with a full-map box: the peak resident memory over the idle process with
its model loaded (see WHAT, copied into the JSON). --code runs another checkout (e.g. the code
before issue 32, `git archive 63c4453`); results are merged into --out under --label, other
labels' sections are kept. Linux only (/proc/PID/status, clear_refs)."""
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
MODELS = ["models/mexgan-cityscapes/seed0", "models/twosm-full-cityscapes/seed0"]


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


CLI_WRAPPER = """\
import gc, runpy, sys
import stages  # the CPU settings (portable mode) before torch, as `python -m stages.edit`
import pipeline.apps.editing as editing

def status(key):
    with open('/proc/self/status') as f:
        return int(next(l for l in f if l.startswith(key + ':')).split()[1]) / 1024

original = editing.load_editor

def load_editor(*args, **kwargs):  # the idle process: the model loaded, no map read yet
    editor = original(*args, **kwargs)
    gc.collect()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # VmHWM := VmRSS: the peak from here on is this run's own
    print('IDLE', status('VmRSS'), file=sys.stderr, flush=True)
    return editor

editing.load_editor = load_editor
sys.argv = ['stages.edit'] + sys.argv[1:]
try:
    runpy.run_module('stages.edit', run_name='__main__')
except SystemExit as e:
    code = e.code
else:
    code = 0
print('PEAK', status('VmHWM'), file=sys.stderr, flush=True)
sys.exit(code)
"""


def cli_run(code, model, path, box, out) -> dict:
    """`python -m stages.edit MODEL PATH --edit BOX car` in a fresh process: its VmRSS right
    after the model is loaded (before the map is read), its peak (VmHWM, reset at that point)
    and the peak's excess over that idle RSS."""
    env = dict(os.environ, PYTHONPATH=code, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CLI_WRAPPER, os.path.join(code, model), path,
                           "--edit", box, "car", "--out", out],
                          cwd=code, env=env, capture_output=True, text=True)
    lines = done.stderr.splitlines()
    value = {k: float(l.split()[1]) for l in lines for k in ("IDLE", "PEAK")
             if l.startswith(k + " ")}
    last = [l for l in lines if not l.startswith(("IDLE ", "PEAK "))]
    answer = (last[-1] if last else (done.stdout.strip().splitlines() or [""])[-1])[:200]
    side = os.path.join(out, "side_by_side.png")
    size = None
    if done.returncode == 0 and os.path.exists(side):
        with open(side, "rb") as f:  # the IHDR: it may be too large for PIL to open
            size = list(struct.unpack(">II", f.read(24)[16:24]))
    idle, peak = value.get("IDLE"), value.get("PEAK")
    return {"exit": done.returncode, "answer": answer, "side_by_side": size,
            "idle_rss_mb": None if idle is None else round(idle, 1),
            "peak_mb": None if peak is None else round(peak, 1),
            "peak_over_idle_mb": None if None in (idle, peak) else round(peak - idle, 1)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_mb(pid, key) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith(key + ":")).split()[1]) / 1024


def editor_run(code, model, files, name, box) -> dict:
    """One upload to a fresh editor server (`stages.serve --editor --editor-row MODEL`): after
    a warm-up edit of an 8x8 map its VmHWM is reset to its VmRSS (the idle server); the
    request's cost is the peak after it minus that idle RSS."""
    import httpx
    port = free_port()
    env = dict(os.environ, PYTHONPATH=code, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "stages.serve", "--editor", "--editor-row",
                                model, "--data", "/nonexistent", "--port", str(port)], cwd=code,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "no server"
                time.sleep(0.2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as c:
            def post(file, box):
                with open(files[file], "rb") as f:
                    upload = base64.b64encode(f.read()).decode()
                return c.post("/api/editor/edit", json={"upload": upload, "box": box,
                                                        "label": "car"})
            assert post("tiny_8x8.png", [0, 0, 8, 8]).status_code == 200, "warm-up edit"
            with open(f"/proc/{process.pid}/clear_refs", "w") as f:
                f.write("5")
            idle = status_mb(process.pid, "VmRSS")
            answer = post(name, box)
            peak = status_mb(process.pid, "VmHWM")
        return {"status": answer.status_code,
                "answer": answer.json().get("error") if answer.status_code >= 400 else "edited",
                "idle_rss_mb": round(idle, 1), "peak_mb": round(peak, 1),
                "peak_over_idle_mb": round(peak - idle, 1)}
    finally:
        process.terminate()
        process.wait(30)


REAL_MAP = os.path.join(os.path.dirname(HERE), "shared", "data", "cityscapes", "train_label",
                        "aachen_000000_000019_gtFine_labelIds.png")
WHAT = ("issue 32's worst inputs against python -m stages.edit and the editor server "
        "(stages.serve --editor), a full-map box, label car, per model. Every case runs in a "
        "fresh process. idle_rss_mb: the process's resident memory (VmRSS, MB) when it is idle "
        "with the model loaded -- stages.edit: right after load_editor returns, before the map "
        "is read; the editor server: after a warm-up edit of an 8x8 map -- at which point its "
        "peak (VmHWM) is reset to it (/proc/PID/clear_refs 5). peak_mb: VmHWM at the end (the "
        "command's exit; the server after the response). peak_over_idle_mb = peak_mb - "
        "idle_rss_mb: what the input costs over the idle process (issue 32: <= 500 for legal "
        "input; tiny_8x8, the smallest map, is what any edit costs: the generator's forward "
        "at its own size). cityscapes_real_2048x1024 is a real gtFine labelIds map of "
        "../shared (not "
        "committed). tools/hostile_inputs_bench.py. The before_63c4453 section was measured "
        "by an earlier version of this tool (one model; stages.edit: ru_maxrss minus the same "
        "command's on an 8x8 map; editor: one server, growth past the previous case's peak).")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default=HERE)
    parser.add_argument("--label", default="after")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--out", default=os.path.join(HERE, "reports", "hostile_inputs.json"))
    args = parser.parse_args()
    sys.path.insert(0, HERE)
    from pipeline.atomic import write_json_atomic
    from pipeline.data.sets import get_spec
    palette = get_spec("cityscapes").palette
    cases = [("tiny_8x8.png", "0,0,8,8"),  # any edit's own cost (the model's forward)
             ("ico_13000x13000.ico.png", "0,0,256,256"),
             ("ids_1x16777216.png", "0,0,1,16777216"),
             ("colour_2048x1024.png", "0,0,2048,1024"),
             ("cityscapes_real_2048x1024.png", "0,0,2048,1024"),
             ("ids_4096x4096_1bit.png", "0,0,4096,4096"),
             ("colour_4096x4096.png", "0,0,4096,4096")]
    section = {}
    with tempfile.TemporaryDirectory() as folder:
        files = inputs(folder, palette)
        if os.path.exists(REAL_MAP):
            files["cityscapes_real_2048x1024.png"] = REAL_MAP
        else:
            cases = [c for c in cases if c[0] != "cityscapes_real_2048x1024.png"]
        for model in args.models:
            cli, editor = {}, {}
            for name, box in cases:
                cli[name] = cli_run(args.code, model, files[name], box,
                                    os.path.join(folder, "out"))
                print(args.label, model, "stages.edit", name, cli[name], flush=True)
            for name, box in cases:
                editor[name] = editor_run(args.code, model, files, name,
                                          [int(v) for v in box.split(",")])
                print(args.label, model, "editor", name, editor[name], flush=True)
            worst = {what: max((r["peak_over_idle_mb"] or 0) for r in runs.values())
                     for what, runs in (("stages_edit", cli), ("editor_server", editor))}
            section[model] = {"stages_edit": cli, "editor_server": editor,
                              "worst_peak_over_idle_mb": worst}
    report = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            report = json.load(f)
    report["what"] = WHAT
    report[args.label] = {"code": os.path.abspath(args.code), "models": section,
                          "limit_mb": 500,
                          "machine": f"{os.cpu_count()} cores, {sys.platform}",
                          "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_json_atomic(args.out, report)


if __name__ == "__main__":
    main()
