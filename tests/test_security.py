"""No file from a stranger runs code: a malicious pickle on every loading path is refused with one line naming
the file and the pickled global; YAML ``!!python`` tags are rejected; run folders never lead into another run.

The malicious files hold valid weights plus an object whose unpickling writes a marker file (``os.system`` or
``open``); the marker must never exist. ``test_payload_runs_when_the_user_trusts_the_file`` shows the payload
is live, so the other tests could fail.
"""
import argparse
import hashlib
import os
import pickle

import cv2
import pytest
import torch
import yaml

from basicsr.archs import build_network
from basicsr.utils.options import OptionError, parse_options
from basicsr.utils.serialization import RefusedPickleError, UnreadableFileError, load_torch_file
from engine_helpers import PYTHON, ROOT, make_clean_images, run_script, tiny_options

TINY_NET = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]}


class Payload:
    """Unpickling it calls ``fn(*args)``."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payload(marker, how='system'):
    if how == 'system':
        return Payload(os.system, f'touch {marker}')
    return Payload(open, str(marker), 'w')


def plant(path, marker, content=None, how='system', protocol=2, sha256=False):
    """Write ``content`` (default: valid TINY_NET weights as ``params``) plus a payload to ``path``."""
    obj = dict(content if content is not None else {'params': build_network(TINY_NET).state_dict()})
    obj['extra'] = payload(marker, how)
    torch.save(obj, path, pickle_protocol=protocol)
    if sha256:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        path.with_name(path.name + '.sha256').write_text(digest + '\n')
    return path


def warnings_text(caplog, capfd):
    """What was logged at WARNING: the 'basicsr' logger may print to stderr without propagating."""
    return caplog.text + capfd.readouterr().err


def assert_refused_line(run, path, marker):
    """Exit status 2, no traceback, and the last stderr line is the refusal naming the file and the global."""
    assert not marker.exists(), 'the payload ran'
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, run.stderr[-2000:]
    assert 'Traceback' not in run.stderr
    assert lines[-1].startswith('error: refusing to load ') and str(path) in lines[-1], lines[-1]
    assert 'it pickles posix.system' in lines[-1] and '--trust-pickle' in lines[-1]


# ---------------------------------------------------------------------------------------------- the loader
def test_payload_runs_when_the_user_trusts_the_file(tmp_path):
    marker = tmp_path / 'marker'
    path = plant(tmp_path / 'evil.pth', marker)
    load_torch_file(path, trust_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize('how,protocol,legacy', [('system', 2, False), ('open', 2, False), ('system', 4, False),
                                                  ('system', 2, True)])
def test_loader_refuses_and_names_the_global(tmp_path, how, protocol, legacy):
    marker = tmp_path / 'marker'
    path = tmp_path / 'evil.pth'
    obj = {'w': torch.zeros(2), 'extra': payload(marker, how)}
    torch.save(obj, path, pickle_protocol=protocol, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(RefusedPickleError) as info:
        load_torch_file(path)
    assert not marker.exists()
    name = 'posix.system' if how == 'system' else 'io.open'
    assert info.value.global_name == name and info.value.path == str(path)
    assert str(info.value).startswith(f'refusing to load {path}: it pickles {name};')


def test_global_named_without_torchs_allow_list(tmp_path, monkeypatch):
    """Older torch versions lack part of the private allow-list: the refusal still names the global."""
    import basicsr.utils.serialization as serialization
    monkeypatch.setattr(serialization, '_torch_safe_globals', lambda: None)
    marker = tmp_path / 'marker'
    path = plant(tmp_path / 'evil.pth', marker)
    with pytest.raises(RefusedPickleError, match='it pickles posix.system;'):
        load_torch_file(path)
    assert not marker.exists()


def test_plain_pickle_refused(tmp_path):
    marker = tmp_path / 'marker'
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps({'extra': payload(marker)}, protocol=4))
    with pytest.raises(RefusedPickleError, match='it pickles posix.system'):
        load_torch_file(path)
    assert not marker.exists()


def test_junk_is_unreadable_not_refused(tmp_path):
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(UnreadableFileError, match='junk.pth cannot be read'):
        load_torch_file(tmp_path / 'junk.pth')


def test_damaged_malicious_files_are_refused_or_unreadable(tmp_path):
    """Random byte changes and cuts of malicious files (zip, legacy, protocol 4): never loaded, never a raw error."""
    import io
    import random
    marker = tmp_path / 'marker'
    bases = []
    for kwargs in ({}, {'_use_new_zipfile_serialization': False}, {'pickle_protocol': 4}):
        buf = io.BytesIO()
        torch.save({'w': torch.zeros(4), 'extra': payload(marker)}, buf, **kwargs)
        bases.append(buf.getvalue())
    rng = random.Random(0)
    outcomes = set()
    for _ in range(150):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data))]
        with pytest.raises((RefusedPickleError, UnreadableFileError)) as info:
            load_torch_file(tmp_path / 'f.pth', data=bytes(data))
        outcomes.add(info.type)
    assert outcomes == {RefusedPickleError, UnreadableFileError} and not marker.exists()


def test_trust_pickle_is_the_way_to_load_an_old_checkpoint(tmp_path):
    from basicsr.archs.pretrained import load_pretrained
    sd = build_network(TINY_NET).state_dict()
    path = tmp_path / 'official.pth'
    torch.save({'params': sd, 'args': argparse.Namespace(lr=1e-3)}, path)
    with pytest.raises(RefusedPickleError, match='it pickles argparse.Namespace'):
        load_pretrained(build_network(TINY_NET), path)
    net = load_pretrained(build_network(TINY_NET), path, trust_pickle=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in sd.items())


# ---------------------------------------------------------------------------------------------- in-process paths
def test_ensemble_member_weights_refused(tmp_path):
    from basicsr.ensemble.pipeline import build_members
    marker = tmp_path / 'marker'
    evil = plant(tmp_path / 'member.pth', marker)
    opt_file = tmp_path / 'member.yml'
    opt_file.write_text(yaml.safe_dump({'name': 'm', 'network_g': TINY_NET}))
    with pytest.raises(RefusedPickleError, match=f'refusing to load {evil}'):
        build_members([{'opt': str(opt_file), 'weights': str(evil)}], torch.device('cpu'))
    assert not marker.exists()
    official = tmp_path / 'official.pth'
    torch.save({'params': build_network(TINY_NET).state_dict(), 'args': argparse.Namespace(lr=1e-3)}, official)
    (member, ) = build_members([{'opt': str(opt_file), 'weights': str(official)}], torch.device('cpu'),
                               trust_pickle=True)
    assert member(torch.rand(1, 3, 16, 16), {}).shape == (1, 3, 16, 16)


def test_task_classifier_weights_refused(tmp_path):
    from basicsr.inference.task_classifier import build_task_classifier
    marker = tmp_path / 'marker'
    evil = plant(tmp_path / 'cls.pth', marker, content={'w': torch.zeros(1)})
    net = {'type': 'Classifier'}
    with pytest.raises(RefusedPickleError, match=f'refusing to load {evil}'):
        build_task_classifier({'network': net, 'weights': str(evil)}, 'test.task_classifier')
    assert not marker.exists()


def test_vgg_weights_refused_naming_the_file(tmp_path):
    from basicsr.losses.vgg import read_vgg19_state_dict
    marker = tmp_path / 'marker'
    evil = plant(tmp_path / 'vgg19.pth', marker, content={'features.0.weight': torch.zeros(64, 3, 3, 3)})
    with pytest.raises(RefusedPickleError, match=f'refusing to load {evil}: it pickles posix.system'):
        read_vgg19_state_dict(evil)
    assert not marker.exists()


def test_ensir_table_refused(tmp_path):
    from basicsr.ensemble.runner import build_ensemble_from_opt
    marker = tmp_path / 'marker'
    evil = plant(tmp_path / 'table.pth', marker, content={(0, 0): [torch.ones(2)] * 3}, how='open')
    with pytest.raises(RefusedPickleError, match=f'refusing to load {evil}: it pickles io.open'):
        build_ensemble_from_opt({'method': 'EnsIR', 'table': str(evil)}, num_models=2)
    assert not marker.exists()


def test_ensir_table_round_trips_as_safetensors(tmp_path):
    from basicsr.ensemble.lut_io import load_table, save_table
    table = torch.rand(64, 3, 2)
    save_table(tmp_path / 't.safetensors', table, 32, {'bin_width': 32, 'note': 'x'})
    got, b, options = load_table(tmp_path / 't.safetensors')
    assert torch.equal(got, table) and b == 32 and options == {'bin_width': 32, 'note': 'x'}


def test_auto_resume_skips_a_planted_checkpoint_in_process(tmp_path, caplog, capfd):
    from basicsr.engine.checkpoint import load_latest_checkpoint, save_checkpoint
    marker = tmp_path / 'marker'
    save_checkpoint({'iter': 2}, tmp_path, 2)
    plant(tmp_path / 'ckpt_00000004.pth', marker, content={'iter': 4}, sha256=True)
    with caplog.at_level('WARNING', logger='basicsr'):
        state = load_latest_checkpoint(tmp_path)
    assert state['iter'] == 2 and not marker.exists()
    text = warnings_text(caplog, capfd)
    assert f'refusing to load {tmp_path / "ckpt_00000004.pth"}' in text and 'falling back' in text


# ---------------------------------------------------------------------------------------------- YAML
def test_python_tag_in_an_option_file_is_rejected(tmp_path):
    marker = tmp_path / 'marker'
    opt_file = tmp_path / 'evil.yml'
    opt_file.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\nnetwork_g: {TINY_NET}\n')
    with pytest.raises(OptionError, match=f'{opt_file}: not valid YAML'):
        parse_options(opt_file, is_train=False, root=tmp_path)
    assert not marker.exists()


def test_python_tag_in_set_is_rejected(tmp_path):
    marker = tmp_path / 'marker'
    opt_file = tmp_path / 'ok.yml'
    opt_file.write_text(yaml.safe_dump({'name': 'ok', 'network_g': TINY_NET}))
    evil = f'name=!!python/object/apply:os.system ["touch {marker}"]'
    with pytest.raises(OptionError, match='--set name='):
        parse_options(opt_file, [evil], is_train=False, root=tmp_path)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------- run folders
def _test_opt(tmp_path, **path):
    opt_file = tmp_path / 'mine.yml'
    opt_file.write_text(yaml.safe_dump({'name': 'mine', 'network_g': TINY_NET, 'path': path}))
    return opt_file


def _other_run(folder, name='other'):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'options_resolved.yml').write_text(yaml.safe_dump({'name': name}))
    return folder


def test_name_with_dotdot_is_rejected(tmp_path):
    opt_file = tmp_path / 'x.yml'
    opt_file.write_text(yaml.safe_dump({'name': '../other', 'network_g': TINY_NET}))
    with pytest.raises(OptionError, match=r"'name': '\.\./other' must be a plain folder name"):
        parse_options(opt_file, is_train=False, root=tmp_path)


@pytest.mark.parametrize('where', ['inside', 'dotdot'])
def test_results_root_into_another_run_is_refused(tmp_path, where):
    other = _other_run(tmp_path / 'results' / 'other')
    given = other / 'visualization' if where == 'inside' else tmp_path / 'results' / 'mine' / '..' / 'other'
    with pytest.raises(OptionError, match=rf"'path.results_root' leads to {other}.* of run 'other'"):
        parse_options(_test_opt(tmp_path, results_root=str(given)), is_train=False, root=tmp_path)


def test_symlinked_run_folder_into_another_run_is_refused(tmp_path):
    other = _other_run(tmp_path / 'experiments' / 'other')
    (tmp_path / 'experiments' / 'mine').symlink_to(other, target_is_directory=True)
    opt_file = tiny_options(tmp_path, name='mine')
    yaml_opt = yaml.safe_load(opt_file.read_text())
    del yaml_opt['path']['experiments_root']
    opt_file.write_text(yaml.safe_dump(yaml_opt))
    with pytest.raises(OptionError, match=rf"'name' leads to {other}, inside the folder {other} of run 'other'"):
        parse_options(opt_file, root=tmp_path)


def test_symlink_to_a_fresh_folder_is_resolved_and_reported(tmp_path, caplog, capfd):
    target = tmp_path / 'scratch' / 'mine'
    target.mkdir(parents=True)
    (tmp_path / 'link').symlink_to(target, target_is_directory=True)
    with caplog.at_level('WARNING', logger='basicsr'):
        opt = parse_options(_test_opt(tmp_path, results_root=str(tmp_path / 'link')), is_train=False, root=tmp_path)
    assert opt['path']['results_root'] == str(target)
    assert f'resolves to {target}' in warnings_text(caplog, capfd)


def test_rerunning_the_same_run_is_allowed(tmp_path):
    _other_run(tmp_path / 'results' / 'mine', name='mine')
    opt = parse_options(_test_opt(tmp_path), is_train=False, root=tmp_path)
    assert opt['path']['results_root'] == str(tmp_path / 'results' / 'mine')


# ---------------------------------------------------------------------------------------------- command lines
@pytest.mark.slow
def test_test_py_refuses_malicious_pretrained_weights(tmp_path):
    marker = tmp_path / 'marker'
    evil = plant(tmp_path / 'weights.pth', marker)
    data = make_clean_images(tmp_path / 'clean', n=1, size=32)
    opt = {'name': 'sec', 'num_gpu': 0, 'network_g': TINY_NET,
           'datasets': {'test': {'name': 'gen', 'type': 'SyntheticDegradationDataset', 'dataroot_gt': str(data),
                                 'degradation': {'type': 'GaussianNoise', 'sigma': 25}}},
           'path': {'pretrain_network_g': str(evil), 'results_root': str(tmp_path / 'res')}}
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(opt))
    run = run_script([PYTHON, 'basicsr/test.py', '-opt', str(tmp_path / 'test.yml')], cwd=ROOT)
    assert_refused_line(run, evil, marker)
    official = tmp_path / 'official.pth'  # pickles an argparse.Namespace: loads only with --trust-pickle
    torch.save({'params': build_network(TINY_NET).state_dict(), 'args': argparse.Namespace(lr=1e-3)}, official)
    cmd = [PYTHON, 'basicsr/test.py', '-opt', str(tmp_path / 'test.yml'),
           '--set', f'path.pretrain_network_g={official}']
    run = run_script(cmd, cwd=ROOT)
    assert run.returncode == 2 and 'it pickles argparse.Namespace' in run.stderr
    run = run_script(cmd + ['--trust-pickle'], cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.slow
def test_train_py_refuses_malicious_pretrained_weights_resume_state_and_vgg_weights(tmp_path):
    marker = tmp_path / 'marker'
    opt_file = tiny_options(tmp_path, name='sec', total_iter=2, width=8)
    net = yaml.safe_load(opt_file.read_text())['network_g']
    evil = plant(tmp_path / 'weights.pth', marker, content={'params': build_network(net).state_dict()})
    run = run_script([PYTHON, 'basicsr/train.py', '-opt', str(opt_file), '--set', f'path.pretrain_network_g={evil}'],
                     cwd=ROOT)
    assert_refused_line(run, evil, marker)
    state = plant(tmp_path / 'state.pth', marker, content={'iter': 1}, sha256=True)
    run = run_script([PYTHON, 'basicsr/train.py', '-opt', str(opt_file), '--set', f'path.resume_state={state}'],
                     cwd=ROOT)
    assert_refused_line(run, state, marker)
    vgg = plant(tmp_path / 'vgg19.pth', marker, content={'features.0.weight': torch.zeros(64, 3, 3, 3)})
    loss = f"{{type: PerceptualLoss, layer_weights: {{conv5_4: 1.0}}, vgg_weights_path: '{vgg}'}}"
    run = run_script([PYTHON, 'basicsr/train.py', '-opt', str(opt_file), '--set', f'train.perceptual_opt={loss}'],
                     cwd=ROOT)
    assert not marker.exists() and run.returncode == 2
    assert f'refusing to load {vgg}: it pickles posix.system' in run.stderr.splitlines()[-1]


@pytest.mark.slow
def test_auto_resume_skips_a_planted_checkpoint_and_resumes_from_the_previous(tmp_path):
    marker = tmp_path / 'marker'
    opt_file = tiny_options(tmp_path, name='sec', total_iter=2, ckpt_freq=1, width=8)
    cmd = [PYTHON, 'basicsr/train.py', '-opt', str(opt_file)]
    assert run_script(cmd, cwd=ROOT).returncode == 0
    states = tmp_path / 'experiments' / 'sec' / 'training_states'
    latest = states / 'ckpt_00000002.pth'
    plant(latest, marker, content={'iter': 2}, sha256=True)
    run = run_script(cmd, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not marker.exists()
    assert f'refusing to load {latest}: it pickles posix.system' in run.stderr
    assert 'falling back to the previous checkpoint' in run.stderr
    assert f"resumed from {states / 'ckpt_00000001.pth'} at iteration 1" in run.stderr


@pytest.mark.slow
def test_demo_and_convert_checkpoint_refuse_malicious_weights(tmp_path):
    marker = tmp_path / 'marker'
    bundled_net = {'type': 'NAFNet', 'width': 16, 'enc_blk_nums': [1, 1, 1, 1], 'middle_blk_num': 1,
                   'dec_blk_nums': [1, 1, 1, 1]}
    evil = plant(tmp_path / 'weights.pth', marker, content={'params': build_network(bundled_net).state_dict()})
    run = run_script([PYTHON, 'basicsr/demo.py', '--weights', str(evil), '--output', str(tmp_path / 'out')],
                     cwd=ROOT)
    assert_refused_line(run, evil, marker)
    run = run_script([PYTHON, 'scripts/convert_checkpoint.py', str(evil), str(tmp_path / 'out.safetensors'),
                      '--type', 'NAFNet', '--kwargs', '{"width": 16, "enc_blk_nums": [1, 1, 1, 1], '
                      '"middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]}'], cwd=ROOT)
    assert_refused_line(run, evil, marker)
    assert not (tmp_path / 'out.safetensors').exists()


@pytest.mark.slow
def test_benchmark_archs_refuses_malicious_vectors(tmp_path):
    marker = tmp_path / 'marker'
    vectors = tmp_path / 'vectors'
    vectors.mkdir()
    evil = plant(vectors / 'NAFNet.pt', marker, content={'type': 'NAFNet', 'kwargs': {'width': 8}})
    run = run_script([PYTHON, 'scripts/benchmark_archs.py', '--reduced', '--vectors', str(vectors),
                      '--manifests', str(tmp_path / 'none'), '--types', '^NAFNet$'], cwd=ROOT)
    assert_refused_line(run, evil, marker)


# ------------------------------------------------------------- --trust-pickle reaches every file a run loads
@pytest.mark.slow
def test_test_py_trust_pickle_reaches_the_task_classifier_weights(tmp_path):
    marker = tmp_path / 'marker'
    evil = plant(tmp_path / 'cls.pth', marker, content={'params': build_network({'type': 'Classifier'}).state_dict()})
    data = make_clean_images(tmp_path / 'clean', n=1, size=32)
    opt = {'name': 'sec', 'num_gpu': 0, 'network_g': TINY_NET,
           'datasets': {'test': {'name': 'gen', 'type': 'SyntheticDegradationDataset', 'dataroot_gt': str(data),
                                 'degradation': {'type': 'GaussianNoise', 'sigma': 25}}},
           'test': {'task_classifier': {'network': {'type': 'Classifier'}, 'weights': str(evil)}},
           'path': {'results_root': str(tmp_path / 'res')}}
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(opt))
    cmd = [PYTHON, 'basicsr/test.py', '-opt', str(tmp_path / 'test.yml')]
    assert_refused_line(run_script(cmd, cwd=ROOT), evil, marker)
    run = run_script(cmd + ['--trust-pickle'], cwd=ROOT)
    assert marker.exists(), 'the opt-in did not reach the task classifier weights'
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.slow
def test_ensemble_script_trust_pickle_reaches_the_ensir_table(tmp_path):
    marker = tmp_path / 'marker'
    table = {'format': 'basicsr.EnsIR', 'version': 1, 'bin_width': 256, 'num_models': 2,
             'table': torch.full((1, 3, 2), 0.5), 'options': {}}
    evil = plant(tmp_path / 'table.pth', marker, content=table)
    rng = torch.Generator().manual_seed(0)
    models = []
    for name in ('m1', 'm2'):
        folder = tmp_path / name
        folder.mkdir()
        img = (torch.rand(8, 8, 3, generator=rng) * 255).to(torch.uint8).numpy()
        cv2.imwrite(str(folder / 'a.png'), img)
        models.append(str(folder))
    cmd = [PYTHON, 'scripts/ensemble.py', 'apply', '--table', str(evil), '--models', *models,
           '--out', str(tmp_path / 'out')]
    assert_refused_line(run_script(cmd, cwd=ROOT), evil, marker)
    run = run_script(cmd + ['--trust-pickle'], cwd=ROOT)
    assert marker.exists(), 'the opt-in did not reach the EnsIR table'
    assert run.returncode == 0 and (tmp_path / 'out' / 'a.png').is_file(), run.stderr[-2000:]


@pytest.mark.slow
def test_train_py_trust_pickle_reaches_the_vgg_weights(tmp_path):
    marker = tmp_path / 'marker'
    opt_file = tiny_options(tmp_path, name='sec', total_iter=2, width=8)
    vgg = plant(tmp_path / 'vgg19.pth', marker, content={'features.0.weight': torch.zeros(64, 3, 3, 3)})
    loss = f"{{type: PerceptualLoss, layer_weights: {{conv5_4: 1.0}}, vgg_weights_path: '{vgg}'}}"
    run = run_script([PYTHON, 'basicsr/train.py', '-opt', str(opt_file), '--set', f'train.perceptual_opt={loss}',
                      '--trust-pickle'], cwd=ROOT)
    assert marker.exists(), 'the opt-in did not reach the VGG weights'
    # unpickled, then checked: this stand-in holds one VGG19 tensor, so the run stops at the next missing key
    assert run.returncode == 2 and "'features.0.bias' is missing" in run.stderr.splitlines()[-1], run.stderr[-2000:]
