# Tests of check.py on small made-up trees: an import cycle between sibling files (`super::x` in a file module) and between a directory module and a file are found, a child naming its ancestor is no cycle, and test items are not counted.
import os
import subprocess
import sys

CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check.py")


def run(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("//! %s, a file of the test tree.\n%s" % (name, text))
    return subprocess.run([sys.executable, CHECK, str(tmp_path / "src")], capture_output=True, text=True, timeout=60)


def test_siblings_naming_each_other_through_super_are_a_cycle(tmp_path):
    r = run(tmp_path, {
        "lib.rs": "mod session;\n",
        "session/mod.rs": "mod a;\nmod b;\npub struct Session;\n",
        "session/a.rs": "use super::b::Tables;\nuse super::Session;\npub struct State;\n",
        "session/b.rs": "use super::a::State;\npub struct Tables;\n",
    })
    assert r.returncode != 0 and "import cycle: " in r.stdout + r.stderr, r.stdout + r.stderr
    assert "src/session/a.rs" in r.stdout + r.stderr and "src/session/b.rs" in r.stdout + r.stderr


def test_one_way_imports_and_a_child_naming_its_parent_pass(tmp_path):
    r = run(tmp_path, {
        "lib.rs": "mod session;\nmod limits;\n",
        "limits.rs": "pub const N: usize = 1;\n",
        "session/mod.rs": "mod a;\nmod b;\nmod deep;\npub struct Session;\nuse self::a::State;\n",
        "session/a.rs": "use super::b::Tables;\nuse super::Session;\nuse crate::limits::N;\npub struct State;\n",
        "session/b.rs": "use crate::limits::N;\npub struct Tables;\n",
        "session/deep/mod.rs": "use super::super::limits::N;\nuse super::b::Tables;\n",
    })
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_edge_under_cfg_test_is_no_cycle(tmp_path):
    r = run(tmp_path, {
        "lib.rs": "mod a;\nmod b;\n",
        "a.rs": "use crate::b::B;\npub struct A;\n",
        "b.rs": "pub struct B;\n#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
    })
    assert r.returncode == 0, r.stdout + r.stderr
