"""demo.py on folders a user really has: bad files among good ones, gray / RGBA / 16-bit images, tiny images,
the output folder being the input folder; small inputs through the padding helpers; --tlc and --help defaults."""
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from engine_helpers import PYTHON, ROOT, run_script

SAMPLES = ROOT / 'datasets' / 'samples'


def _png(path, arr):
    assert cv2.imwrite(str(path), arr)
    return path


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _bad_folder(folder):
    """Two good images, an empty PNG, a PNG cut in half and a text file named .jpg."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    good = _png(folder / 'a.png', rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    (folder / 'b_empty.png').write_bytes(b'')
    (folder / 'c_cut.png').write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    (folder / 'd_text.jpg').write_text('not an image')
    _png(folder / 'e.png', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return folder


@pytest.mark.slow  # a subprocess, as a user runs it
def test_folder_with_bad_files_restores_the_good_ones_and_exits_1(tmp_path):
    inp, out = _bad_folder(tmp_path / 'in'), tmp_path / 'out'
    before = _digest(inp)
    run = run_script([PYTHON, 'basicsr/demo.py', '--input', str(inp), '--output', str(out), '--device', 'cpu'],
                     cwd=ROOT)
    assert run.returncode == 1, run.stderr[-2000:]
    assert 'Traceback' not in run.stderr
    for bad in ('b_empty.png', 'c_cut.png', 'd_text.jpg'):
        assert any(line.startswith('warning: ') and bad in line for line in run.stderr.splitlines()), bad
    summary = run.stderr.strip().splitlines()[-1]
    assert summary.startswith('3 of 5 image(s) failed') and all(b in summary for b in ('b_empty', 'c_cut', 'd_text'))
    assert 'restored 2 of 5 image(s)' in run.stdout
    assert sorted(p.name for p in out.iterdir()) == ['a_restored.png', 'a_side_by_side.png',
                                                      'e_restored.png', 'e_side_by_side.png']
    assert _digest(inp) == before


@pytest.mark.slow  # a subprocess, as a user runs it
def test_one_bad_file_given_directly_is_a_one_line_error(tmp_path):
    bad = tmp_path / 'x.png'
    bad.write_bytes(b'')
    run = run_script([PYTHON, 'basicsr/demo.py', '--input', str(bad), '--output', str(tmp_path / 'o' / 'sub'),
                      '--device', 'cpu'], cwd=ROOT)
    assert run.returncode == 2 and 'Traceback' not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith('error: ') and 'x.png' in run.stderr
    assert not (tmp_path / 'o').exists()  # nothing restored: no (empty) output folder, nor its new parent


def test_no_output_folder_when_nothing_was_restored(tmp_path, capsys):
    """A folder of bad files only: the output folder the command made is removed again; one that existed stays."""
    from basicsr.demo import ImagesFailed, main
    inp = _bad_folder(tmp_path / 'in')
    for name in ('a.png', 'e.png'):
        (inp / name).unlink()
    with pytest.raises(ImagesFailed):
        main(['--input', str(inp), '--output', str(tmp_path / 'new' / 'out'), '--device', 'cpu'])
    assert not (tmp_path / 'new').exists()
    (tmp_path / 'old').mkdir()
    with pytest.raises(ImagesFailed):
        main(['--input', str(inp), '--output', str(tmp_path / 'old'), '--device', 'cpu'])
    assert (tmp_path / 'old').is_dir() and not any((tmp_path / 'old').iterdir())


def test_failures_are_reported_in_process_too(tmp_path, capsys):
    from basicsr.demo import ImagesFailed, main
    inp = _bad_folder(tmp_path / 'in')
    with pytest.raises(ImagesFailed) as info:
        main(['--input', str(inp), '--output', str(tmp_path / 'out'), '--device', 'cpu'])
    assert info.value.code == 1
    assert [r['image'] for r in info.value.records] == ['a.png', 'e.png']
    assert sorted(p.name for p, _ in info.value.failures) == ['b_empty.png', 'c_cut.png', 'd_text.jpg']
    assert not list((tmp_path / 'out').glob('.*'))  # no temporary files left behind


def test_output_folder_equal_to_input_folder_never_touches_inputs_or_restores_outputs(tmp_path, capsys):
    from basicsr.demo import main
    inp = tmp_path / 'in'
    inp.mkdir()
    rng = np.random.default_rng(1)
    for name in ('p', 'q'):
        _png(inp / f'{name}.png', rng.integers(0, 256, (16, 20, 3), dtype=np.uint8))
    inputs = _digest(inp)
    first = main(['--input', str(inp), '--output', str(inp), '--device', 'cpu'])
    second = main(['--input', str(inp), '--output', str(inp), '--device', 'cpu'])
    assert [r['image'] for r in first] == [r['image'] for r in second] == ['p.png', 'q.png']
    assert 'leaving out 4 file(s)' in capsys.readouterr().out
    now = _digest(inp)
    assert {k: now[k] for k in inputs} == inputs
    assert sorted(now) == ['p.png', 'p_restored.png', 'p_side_by_side.png', 'q.png', 'q_restored.png',
                           'q_side_by_side.png']


def test_outputs_never_overwrite_an_input_or_each_other(tmp_path):
    from basicsr.demo import Restorer
    inp = tmp_path / 'in'
    inp.mkdir()
    a, b = inp / 'a.png', inp / 'a.jpg'
    guarded = inp / 'a_restored.png'
    restorer = Restorer(pipeline=type('P', (), {'tlc': None})(), conditions={}, in_ch=3, device='cpu', out_dir=inp,
                        keep_bit_depth=False, inputs=[a, b, guarded])
    with pytest.raises(ValueError, match='refusing to overwrite the input file'):
        restorer.targets(a)
    restorer.inputs = {a.resolve(), b.resolve()}
    restorer.written[guarded.resolve()] = a
    with pytest.raises(ValueError, match="already written for '.*a.png'"):
        restorer.targets(b)


def test_gray_rgba_and_16_bit_inputs_keep_their_layout_with_one_warning_each(tmp_path, capsys):
    from basicsr.demo import main
    inp = tmp_path / 'in'
    inp.mkdir()
    rng = np.random.default_rng(2)
    gray = _png(inp / 'gray.png', rng.integers(0, 256, (18, 22), dtype=np.uint8))
    rgba = rng.integers(0, 256, (18, 22, 4), dtype=np.uint8)
    _png(inp / 'rgba.png', rgba)
    _png(inp / 'deep.png', rng.integers(0, 65536, (18, 22, 3), dtype=np.uint16))
    _png(inp / 'plain.png', rng.integers(0, 256, (18, 22, 3), dtype=np.uint8))
    main(['--input', str(inp), '--output', str(tmp_path / 'o8'), '--device', 'cpu'])
    err = capsys.readouterr().err.splitlines()
    warned = {name: [line for line in err if line.startswith('warning: ') and f'{name}.png' in line]
              for name in ('gray', 'rgba', 'deep', 'plain')}
    assert [len(warned[n]) for n in ('gray', 'rgba', 'deep', 'plain')] == [1, 1, 1, 0]
    assert 'gray' in warned['gray'][0] and 'alpha' in warned['rgba'][0] and '--keep-bit-depth' in warned['deep'][0]
    read = lambda p: cv2.imread(str(p), cv2.IMREAD_UNCHANGED)  # noqa: E731
    out_gray = read(tmp_path / 'o8' / 'gray_restored.png')
    assert out_gray.shape == cv2.imread(str(gray), cv2.IMREAD_UNCHANGED).shape == (18, 22)
    out_rgba = read(tmp_path / 'o8' / 'rgba_restored.png')
    assert out_rgba.shape == (18, 22, 4) and np.array_equal(out_rgba[:, :, 3], rgba[:, :, 3])
    assert read(tmp_path / 'o8' / 'deep_restored.png').dtype == np.uint8
    main(['--input', str(inp), '--output', str(tmp_path / 'o16'), '--device', 'cpu', '--keep-bit-depth'])
    deep = read(tmp_path / 'o16' / 'deep_restored.png')
    assert deep.dtype == np.uint16 and deep.shape == (18, 22, 3)
    # 16 bits carry more than 256 levels (not an 8-bit image scaled up)
    assert len(np.unique(deep)) > 256 and np.any(deep % 257)
    assert read(tmp_path / 'o16' / 'plain_restored.png').dtype == np.uint8


def test_alpha_is_upsampled_with_a_super_resolution_output(tmp_path):
    from basicsr.archs import build_network
    from basicsr.demo import main
    net = {'type': 'MSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    torch.manual_seed(0)
    torch.save({'params': build_network(net).state_dict()}, tmp_path / 'sr.pth')
    (tmp_path / 'sr.yml').write_text(yaml.safe_dump({'network_g': net}))
    alpha = np.tile(np.linspace(0, 255, 12).round().astype(np.uint8), (10, 1))
    rgba = np.dstack([np.full((10, 12, 3), 128, np.uint8), alpha])
    _png(tmp_path / 'in.png', rgba)
    main(['--input', str(tmp_path / 'in.png'), '--output', str(tmp_path / 'o'), '--opt', str(tmp_path / 'sr.yml'),
          '--weights', str(tmp_path / 'sr.pth'), '--device', 'cpu'])
    out = cv2.imread(str(tmp_path / 'o' / 'in_restored.png'), cv2.IMREAD_UNCHANGED)
    assert out.shape == (20, 24, 4)
    expected = cv2.resize(alpha.astype(np.float32) / 255, (24, 20), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(out[:, :, 3] / 255, expected, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize('hw', [(3, 3), (5, 7), (1, 1), (1, 9)])
def test_reflect_padding_takes_inputs_smaller_than_the_padding(hw):
    from basicsr.archs.input_size import pad_to_multiple
    x = torch.rand(1, 2, *hw, generator=torch.Generator().manual_seed(0))
    padded, size = pad_to_multiple(x, 16, 'test')
    assert padded.shape == (1, 2, 16, 16) and size == hw
    assert torch.equal(padded[..., :hw[0], :hw[1]], x)
    if min(hw) > 1:  # reflection about the last row / column, as F.pad does for the first pixels it adds
        torch.testing.assert_close(padded[..., hw[0], :hw[1]], x[..., hw[0] - 2, :], rtol=0, atol=0)


def test_reflect_pad_equals_f_pad_where_one_reflection_suffices():
    from basicsr.archs.input_size import reflect_pad
    x = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(1))
    for pads in [(0, 10, 0, 8), (3, 4, 5, 2), (0, 0, 1, 0)]:
        assert torch.equal(reflect_pad(x, pads), F.pad(x, pads, mode='reflect'))
    assert reflect_pad(x, (20, 0, 0, 17)).shape == (1, 3, 26, 31)


@pytest.mark.parametrize('spec', [
    {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1]},
    {'type': 'Restormer', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1},
    {'type': 'RetinexFormer', 'n_feat': 8, 'num_blocks': [1, 1, 1], 'stage': 1},
])
@pytest.mark.parametrize('hw', [(3, 3), (5, 7)])
def test_networks_and_the_pipeline_run_on_tiny_inputs(spec, hw):
    from basicsr.archs import build_network
    from basicsr.inference.pipeline import build_inference
    net = build_network(spec).eval()
    x = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert net(x).shape == x.shape
    assert build_inference(net, {'pad_multiple': 16})(x).shape == x.shape


def test_dehazeformer_window_padding_takes_small_feature_maps():
    from basicsr.archs import build_network
    net = build_network({'type': 'DehazeFormer'}).eval()
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert net(x).shape == x.shape  # 3x3 maps at the deepest level, 8x8 windows


def test_demo_restores_a_3x3_image(tmp_path):
    from basicsr.demo import main
    _png(tmp_path / 't.png', np.random.default_rng(3).integers(0, 256, (3, 3, 3), dtype=np.uint8))
    main(['--input', str(tmp_path / 't.png'), '--output', str(tmp_path / 'o'), '--device', 'cpu'])
    assert cv2.imread(str(tmp_path / 'o' / 't_restored.png')).shape == (3, 3, 3)


def test_tlc_takes_the_bundled_models_training_patch_size(tmp_path, capsys):
    from basicsr.demo import DEFAULT_OPT, main, training_patch_size
    from basicsr.utils.options import load_with_bases
    train = yaml.safe_load((ROOT / 'options' / 'train' / 'NAFNet_w16_denoise_color_sigma25.yml').read_text())
    assert training_patch_size(load_with_bases(DEFAULT_OPT)) == train['datasets']['train']['gt_size'] == 64
    sample = sorted(SAMPLES.glob('*_noisy.png'))[0]
    plain = main(['--input', str(sample), '--output', str(tmp_path / 'a'), '--device', 'cpu'])[0]
    tlc = main(['--input', str(sample), '--output', str(tmp_path / 'b'), '--device', 'cpu', '--tlc'])[0]
    assert 'TLC: training size 64x64' in capsys.readouterr().out
    name = sample.stem.replace('_noisy', '') + '_restored.png'
    a, b = (cv2.imread(str(tmp_path / d / name)).astype(int) for d in 'ab')
    assert np.abs(a - b).max() > 0  # TLC changed the result
    assert tlc['psnr_output'] > tlc['psnr_input'] + 5 and abs(tlc['psnr_output'] - plain['psnr_output']) < 1


def test_tlc_says_when_it_changes_nothing_and_needs_a_size(tmp_path, capsys):
    from basicsr.demo import main
    _png(tmp_path / 's.png', np.random.default_rng(4).integers(0, 256, (20, 20, 3), dtype=np.uint8))
    main(['--input', str(tmp_path / 's.png'), '--output', str(tmp_path / 'o'), '--device', 'cpu', '--tlc'])
    assert '--tlc changes nothing on this 20x20 image' in capsys.readouterr().err
    _png(tmp_path / 'big.png', np.random.default_rng(5).integers(0, 256, (112, 112, 3), dtype=np.uint8))
    big = ['--input', str(tmp_path / 'big.png'), '--output', str(tmp_path / 'o'), '--device', 'cpu', '--tlc']
    main(big)
    assert 'changes nothing' not in capsys.readouterr().err  # 112 px > the 96 px window of 64 px training
    main(big + ['--tile', '48', '--tile-overlap', '16'])
    assert '--tlc changes nothing on 48x48 tiles of this image' in capsys.readouterr().err
    net = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]}
    from basicsr.archs import build_network
    torch.save({'params': build_network(net).state_dict()}, tmp_path / 'n.pth')
    (tmp_path / 'n.yml').write_text(yaml.safe_dump({'network_g': net}))
    args = ['--input', str(tmp_path / 's.png'), '--output', str(tmp_path / 'o2'), '--opt', str(tmp_path / 'n.yml'),
            '--weights', str(tmp_path / 'n.pth'), '--device', 'cpu']
    with pytest.raises(SystemExit, match='--tlc needs the training patch size'):
        main(args + ['--tlc'])
    with pytest.raises(SystemExit, match='--tlc-train-size is used only with --tlc'):
        main(args + ['--tlc-train-size', '32'])
    main(args + ['--tlc', '--tlc-train-size', '8'])
    assert 'TLC: training size 8x8' in capsys.readouterr().out


def test_help_shows_every_default():
    run = run_script([PYTHON, 'basicsr/demo.py', '--help'], cwd=ROOT)
    assert run.returncode == 0
    options = run.stdout[run.stdout.index('options:'):]
    blocks, current = {}, None
    for line in options.splitlines()[1:]:
        if line.startswith('  -'):
            current = line.split()[0].rstrip(',')
            blocks[current] = line
        elif current:
            blocks[current] += ' ' + line.strip()
    mine = [k for k in blocks if k not in ('-h', '--debug')]
    assert {'--input', '--output', '--opt', '--weights', '--tile-overlap', '--tlc', '--tlc-train-size',
            '--keep-bit-depth'} <= set(mine)
    assert [k for k in mine if 'default' not in blocks[k]] == []
    assert 'default: 32' in blocks['--tile-overlap'] and '64' in blocks['--tlc-train-size']


# ---------------------------------------------------------------------------- test.py with skip_bad

TINY_NET = {'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1], 'middle_blk_num': 1, 'dec_blk_nums': [1]}


def _pairs_with_problems(root):
    """GT a..d, LQ a, b (cut short), c, e: d has no LQ, e has no GT, b cannot be read."""
    rng = np.random.default_rng(5)
    for sub in ('gt', 'lq'):
        (root / sub).mkdir(parents=True)
    for name in 'abcd':
        _png(root / 'gt' / f'{name}.png', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    for name in 'abce':
        _png(root / 'lq' / f'{name}.png', rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    cut = root / 'lq' / 'b.png'
    cut.write_bytes(cut.read_bytes()[:100])
    return root / 'gt', root / 'lq'


@pytest.mark.slow  # a subprocess, as a user runs it
def test_test_py_skip_bad_skips_unreadable_and_unpaired_images_and_scores_each_once(tmp_path):
    import csv
    import json

    from basicsr.archs import build_network
    gt, lq = _pairs_with_problems(tmp_path / 'data')
    torch.manual_seed(0)
    torch.save({'params': build_network(TINY_NET).state_dict()}, tmp_path / 'tiny.pth')
    opt = {'name': 'skipbad', 'num_gpu': 0, 'network_g': TINY_NET,
           'datasets': {'test': {'name': 'pairs', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt),
                                 'dataroot_lq': str(lq), 'skip_bad': True}},
           'path': {'pretrain_network_g': str(tmp_path / 'tiny.pth'), 'results_root': str(tmp_path / 'res')},
           'val': {'save_img': True, 'profile': 'basicsr_rgb', 'pbar': False}}
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(opt))
    run = run_script([PYTHON, 'basicsr/test.py', '-opt', str(tmp_path / 'test.yml')], cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / 'res' / 'metrics.json').read_text())['pairs']
    assert metrics['num_images'] == 2 and metrics['num_skipped'] == 3
    assert sorted(s['name'] for s in metrics['skipped']) == ['b', 'd', 'e']
    rows = list(csv.DictReader(open(tmp_path / 'res' / 'pairs_per_image.csv')))
    scored = [r['name'] for r in rows if not r['skipped']]
    assert scored == ['a', 'c'] and sorted(r['name'] for r in rows if r['skipped']) == ['b', 'd', 'e']
    assert all(r['psnr'] == '' for r in rows if r['skipped'])
    mean = np.mean([float(r['psnr']) for r in rows if not r['skipped']])
    assert abs(metrics['mean']['psnr'] - mean) < 1e-5
    assert sorted(p.name for p in (tmp_path / 'res' / 'visualization' / 'pairs').glob('*.png')) == ['a.png', 'c.png']


def test_skip_bad_keeps_replacing_bad_samples_in_training_only(tmp_path):
    from basicsr.data import build_dataset
    gt, lq = _pairs_with_problems(tmp_path / 'data')
    base = {'name': 'p', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq),
            'skip_bad': True}
    test_set = build_dataset({**base, 'phase': 'test'})
    assert [n for n, _ in test_set.excluded] == ['e.png', 'd.png'] and len(test_set) == 3
    assert test_set[1]['name'] == 'b.png' and 'truncated PNG' in test_set[1]['skipped']
    train_set = build_dataset({**base, 'phase': 'train', 'gt_size': 8})
    assert train_set[1]['lq_path'].endswith('c.png')  # training replaces b by the next good sample
    from basicsr.data.data_util import DataError
    with pytest.raises(DataError, match='no LQ partner'):
        build_dataset({**base, 'phase': 'test', 'skip_bad': False})


def test_list_dataset_skip_bad_leaves_out_missing_files(tmp_path):
    from basicsr.data import build_dataset
    from basicsr.data.data_util import DataError
    gt, lq = _pairs_with_problems(tmp_path / 'data')
    listing = tmp_path / 'list.csv'
    listing.write_text('gt/a.png,lq/a.png\ngt/c.png,lq/c.png\ngt/zz.png,lq/c.png\ngt/a.png,lq/yy.png\n')
    opt = {'name': 'l', 'type': 'ListPairDataset', 'dataroot_lq': str(tmp_path / 'data'), 'list_file': str(listing),
           'list_format': 'csv', 'phase': 'test'}
    with pytest.raises(DataError, match='missing'):
        build_dataset(opt)
    ds = build_dataset({**opt, 'skip_bad': True})
    assert len(ds) == 2 and sorted(n for n, _ in ds.excluded) == ['gt/zz.png', 'lq/yy.png']


def test_evaluate_scores_no_image_twice_when_one_is_unreadable(tmp_path):
    from basicsr.data import build_dataset
    from basicsr.engine.evaluator import evaluate
    gt, lq = _pairs_with_problems(tmp_path / 'data')
    (gt / 'd.png').unlink()
    (lq / 'e.png').unlink()
    ds = build_dataset({'name': 'p', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq),
                        'skip_bad': True, 'phase': 'val'})
    res = evaluate(lambda x: x, ds, {'profile': 'basicsr_rgb'}, torch.device('cpu'), pbar=False)
    assert [r['name'] for r in res['images']] == ['a', 'c']
    assert [s['name'] for s in res['skipped']] == ['b'] and 'b.png' in res['skipped'][0]['reason']


def test_validation_during_training_skips_bad_samples_and_says_so(tmp_path):
    import json

    from basicsr.engine.trainer import Trainer
    from basicsr.utils.options import parse_options
    from engine_helpers import tiny_options
    gt, lq = _pairs_with_problems(tmp_path / 'data')
    val = {'name': 'pairs', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq),
           'skip_bad': True}
    path = tiny_options(tmp_path, name='sb', total_iter=2, ckpt_freq=2, gt_size=16, val=True,
                        extra={'datasets.val': val, 'val.val_freq': 2})
    opt = parse_options(path, [], is_train=True)
    Trainer(opt).train()
    root = Path(opt['path']['experiments_root'])
    metrics = json.loads((root / 'val_results' / 'metrics.json').read_text())
    (entry, ) = metrics.values()
    assert entry['num_images'] == 2 and entry['num_skipped'] == 3
    log = '\n'.join(p.read_text() for p in (root / 'log').glob('*.log'))
    assert '2 images scored, 3 skipped (skip_bad): e, d, b' in log


def test_classifier_validation_passes_over_skipped_samples(tmp_path):
    from test_models_classifier import classifier_options

    from basicsr.models import build_model
    from basicsr.utils.options import parse_options
    model = build_model(parse_options(classifier_options(tmp_path), is_train=True))
    items = [{'skipped': "image file 'x.png' is empty (0 bytes)", 'name': 'x.png'},
             {'lq': torch.rand(3, 16, 16), 'task': 1, 'task_name': 'dark', 'lq_path': 'a.png'}]
    res = model.validate(items, {'pbar': False})
    assert [r['name'] for r in res['images']] == ['a']


def test_basicsr_style_validation_passes_over_skipped_samples(tmp_path):
    from test_plugin_method import plugin_options
    from torch.utils.data import DataLoader

    import plugin_method.data  # noqa: F401
    from basicsr.models import build_model
    from basicsr.utils.options import parse_options
    opt = parse_options(plugin_options(tmp_path, {'model_type': 'SRModel'}, drop=('pad_mode', )), root=tmp_path)
    model = build_model(opt)
    gt = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    scale = int(opt.get('scale', 1))
    lq = F.interpolate(gt, scale_factor=1 / scale, mode='bilinear') if scale > 1 else gt

    class Items(list):
        opt = {'name': 'mixed'}

    items = Items([{'skipped': "image file 'x.png' is empty (0 bytes)", 'name': 'x.png'},
                   {'lq': lq[0], 'gt': gt[0], 'lq_path': 'a.png'}])
    model.validation(DataLoader(items, batch_size=1), 1, None, save_img=False)
    assert all(np.isfinite(v) and v > 0 for v in model.metric_results.values())


def test_multitask_dataset_reports_what_its_tasks_left_out(tmp_path):
    from basicsr.data import build_dataset
    gt, lq = _pairs_with_problems(tmp_path / 'data')
    task = {'name': 'pairs', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq)}
    ds = build_dataset({'name': 'mt', 'type': 'MultiTaskDataset', 'phase': 'val', 'skip_bad': True,
                        'tasks': [task]})
    assert sorted(n for n, _ in ds.excluded) == ['d.png', 'e.png']
    assert ds[1]['name'] == 'b.png' and 'skipped' in ds[1]
