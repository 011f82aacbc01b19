"""Option files: _base_ inheritance, --set overrides, validation errors that name file, key and fix."""
import textwrap
from pathlib import Path

import pytest
import yaml

from basicsr.utils.options import OptionError, apply_overrides, load_with_bases, parse_options

MINIMAL = '''
name: tiny
model_type: ImageRestorationModel
scale: 1
num_gpu: 0
manual_seed: 0
network_g: {type: NAFNet, width: 8, enc_blk_nums: [1], middle_blk_num: 1, dec_blk_nums: [1]}
train:
  optim_g: {type: AdamW, lr: 1e-3}
  total_iter: 10
  pixel_opt: {type: L1Loss, loss_weight: 1.0}
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_base_inheritance_deep_merges(tmp_path):
    write(tmp_path, 'base.yml', MINIMAL)
    child = write(tmp_path, 'child.yml', '''
        _base_: base.yml
        name: child
        train: {total_iter: 20}
    ''')
    opt = load_with_bases(child)
    assert opt['name'] == 'child' and opt['train']['total_iter'] == 20
    assert opt['train']['optim_g'] == {'type': 'AdamW', 'lr': 1e-3}  # kept from the base


def test_scientific_notation_is_float_without_tags(tmp_path):
    opt = load_with_bases(write(tmp_path, 'a.yml', MINIMAL + 'val: {val_freq: 5e3}\n'))
    assert opt['train']['optim_g']['lr'] == pytest.approx(1e-3) and opt['val']['val_freq'] == 5000.0


def test_set_overrides_parse_values():
    opt = apply_overrides({'train': {'total_iter': 5}}, ['train.total_iter=10', 'datasets.train.gt_sizes=[64, 96]'])
    assert opt['train']['total_iter'] == 10 and opt['datasets']['train']['gt_sizes'] == [64, 96]
    with pytest.raises(OptionError, match='dotted.key=value'):
        apply_overrides({}, ['novalue'])


def test_typo_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, 'typo.yml', MINIMAL.replace('total_iter: 10', 'total_iter: 10\n  totl_iter: 3'))
    with pytest.raises(OptionError) as info:
        parse_options(path, is_train=True)
    msg = str(info.value)
    assert str(path) in msg and "'train.totl_iter'" in msg and "did you mean 'train.total_iter'" in msg


def test_wrong_type_and_missing_path_and_required(tmp_path):
    text = MINIMAL.replace('scale: 1', "scale: 'two'").replace('  total_iter: 10\n', '')
    text += 'path: {pretrain_network_g: /no/such/file.pth}\n'
    with pytest.raises(OptionError) as info:
        parse_options(write(tmp_path, 'bad.yml', text))
    msg = str(info.value)
    assert "'scale' must be int, got str 'two'" in msg
    assert "'path.pretrain_network_g': path '/no/such/file.pth' does not exist" in msg
    assert "'train.total_iter' is required" in msg


def test_network_kwargs_checked_before_building(tmp_path):
    path = write(tmp_path, 'net.yml', MINIMAL.replace('width: 8', 'widht: 8'))
    with pytest.raises(OptionError, match=r"'widht' \(did you mean 'width'\?\)"):
        parse_options(path)


def test_unknown_network_type_lists_closest(tmp_path):
    path = write(tmp_path, 'net.yml', MINIMAL.replace('type: NAFNet', 'type: NAFNett'))
    with pytest.raises(OptionError, match='closest: NAFNet'):
        parse_options(path)


def test_resolved_paths_and_defaults(tmp_path):
    opt = parse_options(write(tmp_path, 'ok.yml', MINIMAL), root=tmp_path)
    assert opt['path']['experiments_root'] == str(tmp_path / 'experiments' / 'tiny')
    assert opt['logger']['print_freq'] == 100 and opt['path']['strict_load_g'] is True
    test_opt = parse_options(write(tmp_path, 'ok.yml', MINIMAL), is_train=False, root=tmp_path)
    assert test_opt['path']['results_root'] == str(tmp_path / 'results' / 'tiny')


OFFICIAL = Path(__file__).resolve().parents[1] / 'options' / 'train' / 'official'


@pytest.mark.parametrize('name', ['NAFNet-SIDD-width32.yml', 'Restormer-GaussianColorDenoising.yml'])
def test_official_option_files_validate_with_only_paths_changed(name, tmp_path):
    """The official files (copied under options/train/official with dataset paths pointing at the
    sample folder) pass validation: their keys, types and network/loss kwargs are all understood."""
    path = OFFICIAL / name
    opt = parse_options(path, check_paths=False, root=tmp_path)
    assert opt['network_g']['type'] in ('NAFNet', 'Restormer')
    assert yaml.safe_load(path.read_text())['train']['total_iter'] == opt['train']['total_iter']
