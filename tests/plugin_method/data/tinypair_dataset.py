"""TinyPairedDataset: HR images from a folder; LR made on the fly with MATLAB bicubic (BasicSR's helpers)."""
from torch.utils import data

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, imfrombytes, img2tensor, scandir
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class TinyPairedDataset(data.Dataset):
    """Keys: dataroot_gt, io_backend, scale, phase; train: gt_size, use_hflip, use_rot."""

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.io_backend_opt = dict(opt['io_backend'])
        self.file_client = None
        self.paths = sorted(scandir(opt['dataroot_gt'], suffix='.png', full_path=True))

    def __getitem__(self, index):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        scale = self.opt['scale']
        gt_path = self.paths[index]
        img_gt = imfrombytes(self.file_client.get(gt_path, 'gt'), float32=True)
        h, w = img_gt.shape[:2]
        img_gt = img_gt[:h - h % scale, :w - w % scale]
        img_lq = imresize(img_gt, 1 / scale)
        if self.opt['phase'] == 'train':
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.opt['gt_size'], scale, gt_path)
            img_gt, img_lq = augment([img_gt, img_lq], self.opt['use_hflip'], self.opt['use_rot'])
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        return {'lq': img_lq.clamp(0, 1), 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path}

    def __len__(self):
        return len(self.paths)
