"""test.py reports the task classifier's accuracy (overall and per task) on a set whose samples carry task labels."""
import csv
import json

import numpy as np
import torch
import yaml

from basicsr.archs import build_network
from basicsr.inference.task_classifier import task_accuracy
from basicsr.utils.img_util import write_image

PREDICTED = 1   # the made-up classifier's answer for every image


def _constant_classifier() -> dict:
    """A MiOIR Classifier whose head ignores the features and always scores task PREDICTED highest."""
    net = build_network({'type': 'Classifier', 'num_tasks': 7})
    with torch.no_grad():
        net.lastOut.weight.zero_()
        net.lastOut.bias.copy_(torch.nn.functional.one_hot(torch.tensor(PREDICTED), 7).float())
    return {'params': net.state_dict()}


def test_test_py_writes_the_classifier_accuracy_per_task(tmp_path):
    from basicsr.test import main
    rng = np.random.default_rng(0)
    files = {'noise': ['a', 'b', 'c'], 'rain': ['d']}   # noise has label PREDICTED, rain another label
    for task, names in files.items():
        for name in names:
            write_image(tmp_path / f'{task}_gt' / f'{name}.png', rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
            write_image(tmp_path / task / f'{name}.png', rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    torch.save(_constant_classifier(), tmp_path / 'clf.pth')
    torch.save({'params': build_network({'type': 'SRResNet_EP', 'num_feat': 8, 'num_block': 2}).state_dict()},
               tmp_path / 'net.pth')
    pair = {'type': 'PairedImageDataset', 'filename_tmpl': '{}'}
    opt = {'name': 'clf_acc', 'num_gpu': 0,
           'network_g': {'type': 'SRResNet_EP', 'num_feat': 8, 'num_block': 2},
           'datasets': {'test': {'name': 'labelled', 'type': 'MultiTaskDataset', 'tasks': [
               {**pair, 'name': 'noise', 'label': PREDICTED, 'dataroot_lq': str(tmp_path / 'noise'),
                'dataroot_gt': str(tmp_path / 'noise_gt')},
               {**pair, 'name': 'rain', 'label': 3, 'dataroot_lq': str(tmp_path / 'rain'),
                'dataroot_gt': str(tmp_path / 'rain_gt')}]}},
           'path': {'pretrain_network_g': str(tmp_path / 'net.pth'), 'results_root': str(tmp_path / 'res')},
           'val': {'profile': 'basicsr_rgb', 'pbar': False, 'save_img': False},
           'test': {'task_classifier': {'network': {'type': 'Classifier', 'num_tasks': 7},
                                        'weights': str(tmp_path / 'clf.pth'), 'param_key': 'params'}}}
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump(opt))
    main(['-opt', str(tmp_path / 'opt.yml')])

    res = tmp_path / 'res'
    acc = json.loads((res / 'metrics.json').read_text())['labelled']['task_accuracy']
    assert acc == {'overall': 0.75, 'per_task': {'noise': 1.0, 'rain': 0.0}, 'num_images': 4}
    with open(res / 'labelled_per_image.csv') as fh:
        rows = list(csv.DictReader(fh))
    assert [(r['task_name'], r['task'], r['task_pred']) for r in rows] == \
        [('noise', '1', '1')] * 3 + [('rain', '3', '1')]
    log = next(res.glob('test_clf_acc_*.log')).read_text()
    assert 'labelled: task classifier accuracy 0.7500 (noise: 1.0000, rain: 0.0000)' in log


def test_no_accuracy_without_predictions():
    assert task_accuracy([{'name': 'x', 'psnr': 30.0}]) == {}
    rows = [{'task': 2, 'task_name': 'jpeg', 'task_pred': 2}, {'task': 2, 'task_name': 'jpeg', 'task_pred': 5}]
    assert task_accuracy(rows) == {'overall': 0.5, 'per_task': {'jpeg': 0.5}, 'num_images': 2}
