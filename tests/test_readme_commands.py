"""The README's commands cannot drift: every script it names exists and answers ``--help``, every option file
it names parses, and the commands with a number next to them give that number."""
from __future__ import annotations

import csv
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text(encoding='utf-8')
ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))

# option-file names the README uses as placeholders for "your file", not shipped files
PLACEHOLDERS = {'x.yml', 'y.yml', 'ep.yml', 'file.yml', 'my.yml', 'OPTION_FILE.yml'}


def readme_commands() -> List[str]:
    """Shell commands of the README: fenced ``bash`` blocks and 4-space indented blocks, continuations joined."""
    lines: List[str] = []
    in_fence = False
    for line in README.splitlines():
        if line.startswith('```'):
            in_fence = not in_fence and line.strip() in ('```bash', '```sh', '```shell')
            continue
        text = line if in_fence else (line[4:] if line.startswith('    ') else None)
        if text is not None:
            lines.append(text)
    lines += re.findall(r'`((?:\w+=\S+ )*(?:python|\./train\.sh|bash) [^`]+)`', README)  # inline code spans
    joined = re.sub(r'\\\n\s*', ' ', '\n'.join(lines))
    commands = []
    for line in joined.splitlines():
        line = line.split(' #', 1)[0].strip()
        line = re.sub(r'^(\w+=\S+\s+)+', '', line)  # OMP_NUM_THREADS=1 NGPU=2 ...
        if re.match(r'(python|\./train\.sh|bash)\b', line) and '<' not in line:  # <method>/...: a template
            commands.append(line)
    return commands


def expand_braces(word: str) -> List[str]:
    """``a_{M,S}.yml`` -> ``a_M.yml``, ``a_S.yml`` (as the shell does)."""
    parts = re.split(r'\{([^{}]*,[^{}]*)\}', word)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    return [''.join(c) for c in itertools.product(*choices)]


COMMANDS = readme_commands()


def scripts_named() -> List[str]:
    found = set()
    for cmd in COMMANDS:
        words = cmd.split()
        if words[0] == './train.sh':
            found.add('train.sh')
        elif words[0] in ('python', 'bash') and len(words) > 1 and words[1].endswith(('.py', '.sh')) \
                and not words[1].startswith('../'):  # ../shared/tools is not part of the project
            found.add(words[1])
    return sorted(found)


def option_files_named() -> List[tuple]:
    """(path, is_train) of every option file on a README command line."""
    found = set()
    for cmd in COMMANDS:
        words = cmd.split()
        for i, w in enumerate(words):
            if not w.endswith('.yml') or Path(w).name in PLACEHOLDERS or '..' in w:
                continue
            is_train = words[0] == './train.sh' or 'train.py' in cmd
            for path in expand_braces(w):
                found.add((path, is_train))
    return sorted(found)


def test_the_readme_has_the_commands_this_module_checks():
    scripts = scripts_named()
    assert {'basicsr/demo.py', 'basicsr/test.py', 'train.sh', 'scripts/ensemble.py'} <= set(scripts)
    assert len(option_files_named()) >= 10


@pytest.mark.slow
@pytest.mark.parametrize('script', scripts_named())
def test_every_readme_script_exists_and_answers_help(script):
    path = ROOT / script
    assert path.is_file(), f'README names {script}, which does not exist'
    cmd = ['bash', str(path), '--help'] if script.endswith('.sh') else [sys.executable, str(path), '--help']
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'usage' in (out.stdout + out.stderr).lower()


@pytest.mark.parametrize('path,is_train', option_files_named())
def test_every_readme_option_file_exists_and_parses(path, is_train):
    from basicsr.utils.options import parse_options
    assert (ROOT / path).is_file(), f'README names {path}, which does not exist'
    # data folders are made by scripts/prepare_*.py; everything else (keys, types, registered names) is checked
    parse_options(ROOT / path, is_train=is_train, root=ROOT, check_paths=False)


def test_bundled_model_test_command_says_to_prepare_the_data_first():
    cmd = 'python basicsr/test.py -opt options/test/NAFNet_w16_denoise_color_sigma25_CBSD68.yml'
    starts = [m.start() for m in re.finditer(re.escape(cmd), README)]
    assert starts
    for i in starts:  # the preparation step sits just above: in the same code block or the same paragraph
        block = README[max(README.rindex('```', 0, i), README.rindex('\n\n', 0, i)):i]
        assert 'python scripts/prepare_denoise_data.py' in block, README[i - 200:i]


@pytest.mark.slow
def test_ensir_readme_example_gives_the_readme_numbers(shared_dir, tmp_path):
    """The EnsIR fit/apply example as written (with its reference-set paths) prints the README's means."""
    block = README[README.index('R=../shared/data/ensir_reference/deraining'):]
    block = block[:block.index('```')]
    expected = {m: float(v) for m, v in re.findall(r'(EnsIR|median) (\d+\.\d+)', block)}
    assert set(expected) == {'EnsIR', 'median'}
    ref = shared_dir / 'data' / 'ensir_reference' / 'deraining'
    for cmd in [c for c in readme_commands() if c.startswith('python scripts/ensemble.py') and '$R' in c]:
        cmd = cmd.replace('$R', str(ref)).replace('derain_b32.pth', str(tmp_path / 'derain_b32.pth'))
        cmd = cmd.replace('results/ensir', str(tmp_path / 'ensir'))
        out = subprocess.run(cmd.split(), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
    with open(tmp_path / 'ensir' / 'metrics.csv') as f:
        means = {r['method']: float(r['psnr']) for r in csv.DictReader(f) if r['image'] == 'mean'}
    # EM runs in float32 on float images; its summation order may move a mean by well under 1e-3 dB
    for method, value in expected.items():
        assert means[method] == pytest.approx(value, abs=1.5e-3), method
