"""``nano-banana serve`` on a tiny SDXL: a client finds the server of its model, gets the
same image as an in-process engine, a hang-up cancels its job, another model or a wrong key
is not served, a photo travels for image to image, and the CLI's generate goes through a
running server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client

import numpy as np
import pytest
from PIL import Image

from nano_banana.errors import NanoBananaError
from nano_banana.generate.engine import Engine
from nano_banana.generate.pool import PoolConfig
from nano_banana.generate.spec import EngineSpec
from nano_banana.serve.address import ENV_DIR, read_info
from nano_banana.serve.client import find_server
from nano_banana.serve.server import Server
from nano_banana.settings import GenerationRequest

SMALL = dict(prompt="a watch", seed=5, width=64, height=64, steps=3, preset="none")


@pytest.fixture(scope="module")
def spec(tiny_sdxl_dir) -> EngineSpec:
    return EngineSpec(base=str(tiny_sdxl_dir), device="cpu")


@pytest.fixture(scope="module")
def server(spec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    running = Server(spec, folder, PoolConfig(workers=1))
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.close()
    thread.join(10)
    assert read_info(folder) is None and not (folder / "server.sock").exists()


def test_a_client_finds_the_server_of_its_model_and_gets_the_engines_image(server, spec):
    remote = find_server(spec, server.folder)
    assert remote is not None and remote.base_name == server.pool.model.base_name
    steps = []
    result = remote.generate(GenerationRequest(**SMALL), progress=lambda e: steps.append(e.step))
    direct = Engine.load(spec.base, device="cpu").generate(GenerationRequest(**SMALL))
    assert np.array_equal(np.asarray(result.image), np.asarray(direct.image))
    assert result.record.request.seed == 5 and steps and steps[-1] <= 3


def test_a_photo_goes_to_the_server_and_comes_back_redrawn(server, spec):
    remote = find_server(spec, server.folder)
    photo = Image.radial_gradient("L").convert("RGB").resize((64, 64))
    img2img = GenerationRequest(**{**SMALL, "steps": 4, "strength": 0.75})
    result = remote.generate(img2img, init_image=photo)
    direct = Engine.load(spec.base, device="cpu").generate(img2img, init_image=photo)
    assert np.array_equal(np.asarray(result.image), np.asarray(direct.image))
    assert result.record.init_image == direct.record.init_image is not None


def test_another_model_or_no_server_is_none(server, spec, tmp_path):
    assert find_server(EngineSpec(base=str(tmp_path), device="cpu"), server.folder) is None
    assert find_server(spec, tmp_path / "nothing-here") is None


def test_a_bad_request_is_the_servers_one_line_error(server, spec):
    remote = find_server(spec, server.folder)
    with pytest.raises(NanoBananaError, match="preset"):
        remote.generate(GenerationRequest(**{**SMALL, "preset": "no-such-preset"}))


def test_a_client_that_hangs_up_cancels_its_job(server, spec):
    remote = find_server(spec, server.folder)
    conn = remote._connect()
    slow = GenerationRequest(**{**SMALL, "width": 128, "height": 128, "steps": 150})
    conn.send(("generate", remote.info.model, slow))
    assert conn.recv()[0] == "progress"  # running
    conn.close()
    deadline = time.monotonic() + 30
    while server.pool.busy():
        assert time.monotonic() < deadline, "the job went on after its client left"
        time.sleep(0.1)


def test_a_wrong_key_is_refused_before_anything_is_read(server):
    info = read_info(server.folder)
    with pytest.raises(AuthenticationError):
        Client(info.address, family="AF_UNIX", authkey=b"not the key")
    assert find_server(EngineSpec(base=info.model["base"], device="cpu"), server.folder)


def test_a_second_server_in_the_same_folder_is_refused(server, spec):
    with pytest.raises(NanoBananaError, match="already running"):
        Server(spec, server.folder, PoolConfig(workers=1))


def test_the_cli_generate_goes_through_the_running_server(server, spec, tmp_path):
    env = {**os.environ, ENV_DIR: str(server.folder), "OMP_NUM_THREADS": "1"}
    args = ["generate", "a watch", "--base", spec.base, "--device", "cpu", "--seed", "5",
            "--steps", "3", "--width", "64", "--height", "64", "--preset", "none"]  # fmt: skip
    outputs = []
    for extra in ([], ["--no-server"]):
        out = tmp_path / (extra[0] if extra else "server")
        run = subprocess.run(
            [sys.executable, "-m", "nano_banana.cli", *args, *extra, "--out", str(out)],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert ("using the running server" in run.stderr) == (not extra)
        outputs.append(np.asarray(Image.open(next(out.glob("*.png")))))
    assert np.array_equal(*outputs)


def test_batch_goes_through_the_running_server(server, spec, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a watch\na camera\n")
    env = {**os.environ, ENV_DIR: str(server.folder), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "nano_banana.cli", "batch", str(prompts), "--base", spec.base,
         "--device", "cpu", "--steps", "3", "--width", "64", "--height", "64",
         "--preset", "none", "--out", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "using the running server" in run.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
