"""What machine a benchmark ran on (printed and stored beside every figure)."""

from __future__ import annotations

import os
import platform

import torch


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def describe(info: dict | None = None) -> str:
    info = info or machine_info()
    gpu = info["gpu"] or "no GPU"
    threads = f"{info['cores']} cores, {info['torch_threads']} torch threads"
    return f"{info['cpu']} ({threads}), {gpu}, torch {info['torch']}"
