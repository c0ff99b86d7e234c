"""Probe the machine: CPU cores, memory, CUDA devices and their memory.

Owns `Resources` and `probe_resources`. It never imports torch (the app must start fast): CUDA
devices are read from `nvidia-smi` when it exists. Forecasts of time and memory live with the
recommender.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GpuInfo:
    name: str
    memory_gb: float


@dataclass(frozen=True)
class Resources:
    cpu_cores: int
    ram_gb: float
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)
    cpu_flags: tuple[str, ...] = field(default_factory=tuple)
    machine: str = ""

    @property
    def has_cuda(self) -> bool:
        return bool(self.gpus)

    @property
    def gpu_memory_gb(self) -> float:
        return max((g.memory_gb for g in self.gpus), default=0.0)

    def describe(self) -> str:
        cpu = f"{self.cpu_cores} CPU cores, {self.ram_gb:.0f} GiB RAM"
        if not self.gpus:
            return cpu + ", no CUDA GPU"
        gpus = ", ".join(f"{g.name} ({g.memory_gb:.0f} GiB)" for g in self.gpus)
        return f"{cpu}, GPU: {gpus}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Resources:
        return cls(
            cpu_cores=int(raw["cpu_cores"]),
            ram_gb=float(raw["ram_gb"]),
            gpus=tuple(GpuInfo(**g) for g in raw.get("gpus", ())),
            cpu_flags=tuple(raw.get("cpu_flags", ())),
            machine=raw.get("machine", ""),
        )


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _ram_gb() -> float:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        return 0.0


def _cpu_flags() -> tuple[str, ...]:
    """The few CPU features that change training speed (bf16 matrix units)."""
    wanted = {"avx512_bf16", "amx_bf16", "avx2"}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return tuple(sorted(wanted & set(line.split(":", 1)[1].split())))
    except OSError:
        pass
    return ()


def _gpus() -> tuple[GpuInfo, ...]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ()
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem = line.rpartition(",")
        try:
            gpus.append(GpuInfo(name=name.strip(), memory_gb=round(float(mem) / 1024, 1)))
        except ValueError:
            continue
    return tuple(gpus)


def probe_resources() -> Resources:
    """What this machine offers for training, read without importing torch."""
    return Resources(
        cpu_cores=_cpu_cores(),
        ram_gb=round(_ram_gb(), 1),
        gpus=_gpus(),
        cpu_flags=_cpu_flags(),
        machine=platform.machine(),
    )
