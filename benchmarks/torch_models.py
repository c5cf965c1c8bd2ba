"""PyTorch twins of salm_jax's ResNet-18 and small CNN, for the speed comparisons.

Same layers, widths, stems, BatchNorm and normalization as
`salm_jax/models/resnet.py` and `small_cnn.py` (torchvision's BasicBlock
ResNet; the 28 px stem is a 3x3 stride-1 conv without max-pool). The
comparison is only fair if the two compute the same function, so
`copy_from_nnx` loads a Flax model's weights and BatchNorm statistics into
its twin, and the benchmarks check that both give the same logits and have
the same parameter count. Layout is PyTorch's default NCHW, as the reference
code of error-minimizing noise (Huang et al. 2021) runs it.

Imported only by the benchmarks: torch is in the `bench` extra, never in the
core install.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

MEAN, STD = 0.5, 0.5  # salm_jax.models.common.normalize


def _bn(c: int) -> nn.BatchNorm2d:
  return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)  # Flax momentum 0.9 == PyTorch's 0.1


class BasicBlock(nn.Module):

  def __init__(self, cin: int, width: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
    self.norm1 = _bn(width)
    self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
    self.norm2 = _bn(width)
    self.shortcut = None
    if stride != 1 or cin != width:
      self.shortcut = nn.Sequential(nn.Conv2d(cin, width, 1, stride, 0, bias=False), _bn(width))

  def forward(self, x):
    y = F.relu(self.norm1(self.conv1(x)))
    y = self.norm2(self.conv2(y))
    return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet18(nn.Module):
  """ResNet-18 with the 28 px stem (images up to 32 px), `width` channels in stage 1."""

  def __init__(self, num_classes: int, in_channels: int, width: int = 64):
    super().__init__()
    self.stem_conv = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
    self.stem_norm = _bn(width)
    blocks, cin = [], width
    for stage in range(4):
      for i in range(2):
        blocks.append(BasicBlock(cin, width * 2**stage, 2 if stage > 0 and i == 0 else 1))
        cin = width * 2**stage
    self.blocks = nn.Sequential(*blocks)
    self.head = nn.Linear(cin, num_classes)

  def forward(self, x):
    x = F.relu(self.stem_norm(self.stem_conv((x - MEAN) / STD)))
    return self.head(self.blocks(x).mean((2, 3)))


class SmallCNN(nn.Module):
  """conv-BN-ReLU x3 (w, 2w, 4w), 2x2 average pools between, global mean, linear head."""

  def __init__(self, num_classes: int, in_channels: int, width: int = 16):
    super().__init__()
    chans = (in_channels, width, 2 * width, 4 * width)
    self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, 1, 1, bias=False)
                               for i in range(3))
    self.norms = nn.ModuleList(_bn(c) for c in chans[1:])
    self.head = nn.Linear(chans[-1], num_classes)

  def forward(self, x):
    x = (x - MEAN) / STD
    for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
      x = F.relu(norm(conv(x)))
      if i < 2:
        x = F.avg_pool2d(x, 2)
    return self.head(x.mean((2, 3)))


def create(name: str, *, num_classes: int, in_channels: int, width: int) -> nn.Module:
  if name == "resnet18":
    return ResNet18(num_classes, in_channels, width)
  if name == "small_cnn":
    return SmallCNN(num_classes, in_channels, width)
  raise ValueError(f"No PyTorch twin for model {name!r}; have 'resnet18' and 'small_cnn'.")


def num_params(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def _nnx_leaves(nnx_model) -> dict[str, np.ndarray]:
  """Flax state as {'a.b.kernel': array}, with integer path parts for list items."""
  from flax import nnx
  flat = nnx.to_flat_state(nnx.state(nnx_model))
  return {".".join(str(p) for p in path): np.asarray(v.get_value()) for path, v in flat}


def _torch_name(path: str) -> str:
  """Maps a Flax path to its twin's: blocks.0.shortcut.conv -> blocks.0.shortcut.0 etc."""
  name = path.replace("shortcut.conv", "shortcut.0").replace("shortcut.norm", "shortcut.1")
  for flax_leaf, torch_leaf in ((".kernel", ".weight"), (".scale", ".weight"),
                                (".mean", ".running_mean"), (".var", ".running_var")):
    if name.endswith(flax_leaf):
      return name[: -len(flax_leaf)] + torch_leaf
  return name


def copy_from_nnx(module: nn.Module, nnx_model) -> nn.Module:
  """Loads a salm_jax model's parameters and BatchNorm statistics into its twin, in place.

  Conv kernels go HWIO -> OIHW, dense kernels (in, out) -> (out, in). Raises
  if any tensor is missing or has another shape: then the twins differ.
  """
  target = module.state_dict()
  loaded = set()
  for path, value in _nnx_leaves(nnx_model).items():
    name = _torch_name(path)
    if name not in target:
      raise ValueError(f"PyTorch twin has no tensor {name!r} (Flax {path!r}).")
    if value.ndim == 4:
      value = value.transpose(3, 2, 0, 1)
    elif value.ndim == 2:
      value = value.T
    if tuple(target[name].shape) != value.shape:
      raise ValueError(f"{name}: PyTorch {tuple(target[name].shape)} vs Flax {value.shape}.")
    target[name] = torch.from_numpy(np.array(value, dtype=np.float32))
    loaded.add(name)
  missing = [k for k in target if k not in loaded and not k.endswith("num_batches_tracked")]
  if missing:
    raise ValueError(f"Flax model has nothing for PyTorch tensors {missing}.")
  module.load_state_dict(target)
  return module
