"""Probe the machine: CPU cores, memory, CUDA devices and their memory.

Owns `Resources` and `probe_resources`. It never imports torch (the app must start fast): CUDA
devices are read from `nvidia-smi` when it exists. Forecasts of time and memory live with the
recommender.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GpuInfo:
    name: str
    memory_gb: float
    compute_capability: float = 0.0  # e.g. 8.0 for an A100; 0 when unknown

    @property
    def bf16(self) -> bool:
        """bfloat16 tensor cores arrived with compute capability 8.0 (Ampere)."""
        return self.compute_capability >= 8.0


@dataclass(frozen=True)
class Resources:
    cpu_cores: int
    ram_gb: float
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)
    cpu_flags: tuple[str, ...] = field(default_factory=tuple)
    machine: str = ""
    # where base models can come from: the Hugging Face hub (reachable now?) and the catalogue
    # models already on this machine (the embedded default, the local hub cache)
    hub: bool = False
    models_here: tuple[str, ...] = field(default_factory=tuple)

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
            hub=bool(raw.get("hub", False)),
            models_here=tuple(raw.get("models_here", ())),
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
    out = ""
    # compute_cap needs a driver from 2021 on; older ones answer the shorter query
    for query in ("name,memory.total,compute_cap", "name,memory.total"):
        try:
            out = subprocess.run(
                [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            break
        except (OSError, subprocess.SubprocessError):
            continue
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            if len(parts) >= 3:
                name, mem, cap = ",".join(parts[:-2]), float(parts[-2]), float(parts[-1])
            else:
                name, mem, cap = ",".join(parts[:-1]), float(parts[-1]), 0.0
        except ValueError:
            continue
        gpus.append(GpuInfo(name=name, memory_gb=round(mem / 1024, 1), compute_capability=cap))
    return tuple(gpus)


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def models_on_disk(ids) -> tuple[str, ...]:
    """Those of `ids` with a snapshot (config.json) in the local Hugging Face cache."""
    cache = _hub_cache()
    found = []
    for model_id in ids:
        folder = cache / ("models--" + model_id.replace("/", "--")) / "snapshots"
        if folder.is_dir() and any(folder.glob("*/config.json")):
            found.append(model_id)
    return tuple(found)


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 0.8) -> bool:
    """Whether huggingface.co answers now (False at once when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def probe_resources(check_hub: bool = True) -> Resources:
    """What this machine offers for training, read without importing torch."""
    import knowledge

    catalogue = knowledge.load_catalogue()
    embedded = [m for m, card in catalogue.items() if card.embedded]
    return Resources(
        cpu_cores=_cpu_cores(),
        ram_gb=round(_ram_gb(), 1),
        gpus=_gpus(),
        cpu_flags=_cpu_flags(),
        machine=platform.machine(),
        hub=hub_reachable() if check_hub else False,
        models_here=tuple(embedded) + models_on_disk(m for m in catalogue if m not in embedded),
    )
