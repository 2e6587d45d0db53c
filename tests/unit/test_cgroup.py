"""Finding a container's memory cgroup from the host, on cgroup v1 and v2 trees."""

from __future__ import annotations

from pathlib import Path

from codebeaker.runtimes.docker.cgroup import memory_cgroup

CID = "0f3a" * 16


def tree(tmp_path: Path, cgroup_file: str, dirs: dict[str, str]) -> tuple[Path, Path]:
    """A fake /proc/4242/cgroup and a fake cgroup root with these files."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(cgroup_file)
    for relative, content in dirs.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return proc, root


def test_v1_finds_the_memory_hierarchy_and_resets_its_peak(tmp_path: Path) -> None:
    proc, root = tree(
        tmp_path,
        f"12:pids:/docker/{CID}\n7:memory:/docker/{CID}\n1:name=systemd:/docker/{CID}\n",
        {f"memory/docker/{CID}/memory.max_usage_in_bytes": "123456789"},
    )
    found = memory_cgroup(4242, root, proc)
    assert found is not None and found.version == 1
    assert found.path == root / "memory" / "docker" / CID
    assert found.reset_peak()
    assert (found.path / "memory.max_usage_in_bytes").read_text() == "0"


def test_v2_finds_the_unified_hierarchy_and_says_its_peak_cannot_be_reset(
    tmp_path: Path,
) -> None:
    scope = f"system.slice/docker-{CID}.scope"
    proc, root = tree(
        tmp_path,
        f"0::/{scope}\n",
        {f"{scope}/memory.current": "4096", f"{scope}/memory.peak": "8192"},
    )
    found = memory_cgroup(4242, root, proc)
    assert found is not None and found.version == 2
    assert found.path == root / scope
    assert not found.reset_peak()
    assert (found.path / "memory.peak").read_text() == "8192"  # untouched


def test_hybrid_v1_with_a_unified_mount_uses_the_v1_memory_controller(tmp_path: Path) -> None:
    proc, root = tree(
        tmp_path,
        f"7:memory:/docker/{CID}\n0::/docker/{CID}\n",
        {f"memory/docker/{CID}/memory.max_usage_in_bytes": "1"},
    )
    found = memory_cgroup(4242, root, proc)
    assert found is not None and found.version == 1


def test_a_process_gone_or_a_tree_not_mounted_is_none(tmp_path: Path) -> None:
    assert memory_cgroup(4242, tmp_path / "cgroup", tmp_path / "proc") is None
    proc, root = tree(tmp_path, f"7:memory:/docker/{CID}\n", {})
    assert memory_cgroup(4242, root, proc) is None  # no such directory here
