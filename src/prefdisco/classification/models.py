"""Classifiers in plain torch (no torchvision: PyPI's build does not import beside this torch).

    mlp             digits (1 x 8 x 8): one hidden layer of 128
    cnn             digits: two 3x3 convolutions and a linear head
    resnet18        CIFAR-10 (3 x 32 x 32): ResNet-18 with a 3x3 stem, as in the CIFAR literature
    simpledla       CIFAR-10: a simplified Deep Layer Aggregation network (basic-block trees)
    efficientnetb0  CIFAR-10: EfficientNet-B0 (MBConv blocks, squeeze-excitation, swish, drop-connect)

The CIFAR architectures follow the widely used CIFAR versions of these networks (kuangliu/pytorch-cifar), which is
what the paper's transfer study names.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = ("mlp", "cnn", "resnet18", "simpledla", "efficientnetb0")


def build_model(name: str, classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A freshly initialised classifier (seed torch first for reproducible weights)."""
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, 128), nn.ReLU(), nn.Linear(128, classes))
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, classes))
    if name == "resnet18":
        return ResNet18(classes, in_channels)
    if name == "simpledla":
        return SimpleDLA(classes, in_channels)
    if name == "efficientnetb0":
        return EfficientNetB0(classes, in_channels)
    raise ValueError(f"classification.model: unknown model {name!r}; choose one of {', '.join(MODELS)}")


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (projected when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True), *_conv_bn(cout, cout))
        self.shortcut = nn.Sequential(*_conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, 64), nn.ReLU(inplace=True))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class _Root(nn.Module):
    """Aggregates a tree's children: concatenation, a 1x1 convolution, batch norm, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(cin, cout, 1), nn.ReLU(inplace=True))

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return self.body(torch.cat(parts, dim=1))


class _Tree(nn.Module):
    def __init__(self, cin: int, cout: int, level: int = 1, stride: int = 1) -> None:
        super().__init__()
        if level == 1:
            self.left, self.right = BasicBlock(cin, cout, stride), BasicBlock(cout, cout)
        else:
            self.left, self.right = _Tree(cin, cout, level - 1, stride), _Tree(cout, cout, level - 1)
        self.root = _Root(2 * cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.left(x)
        return self.root([left, self.right(left)])


class SimpleDLA(nn.Module):
    def __init__(self, classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn(in_channels, 16), nn.ReLU(inplace=True),
            *_conv_bn(16, 16), nn.ReLU(inplace=True),
            *_conv_bn(16, 32), nn.ReLU(inplace=True),
            _Tree(32, 64, level=1, stride=1), _Tree(64, 128, level=2, stride=2),
            _Tree(128, 256, level=2, stride=2), _Tree(256, 512, level=1, stride=2))
        self.head = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.expand(_swish(self.reduce(F.adaptive_avg_pool2d(x, 1)))))
        return x * scale


class _MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expansion, depthwise convolution, squeeze-excitation, 1x1 projection."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int, drop_rate: float) -> None:
        super().__init__()
        channels = expansion * cin
        self.expand = nn.Sequential(*_conv_bn(cin, channels, 1)) if expansion != 1 else None
        self.depthwise = nn.Sequential(*_conv_bn(channels, channels, kernel, stride, groups=channels))
        self.se = _SqueezeExcite(channels, max(1, int(cin * 0.25)))
        self.project = nn.Sequential(*_conv_bn(channels, cout, 1))
        self.skip = stride == 1 and cin == cout
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _swish(self.expand(x)) if self.expand is not None else x
        out = self.project(self.se(_swish(self.depthwise(out))))
        if not self.skip:
            return out
        if self.training and self.drop_rate > 0:  # drop-connect: skip the whole block for some examples
            keep = 1.0 - self.drop_rate
            mask = torch.bernoulli(torch.full((x.shape[0], 1, 1, 1), keep, device=x.device, dtype=x.dtype))
            out = out / keep * mask
        return out + x


class EfficientNetB0(nn.Module):
    # (expansion, channels, blocks, kernel, stride) per stage
    STAGES = ((1, 16, 1, 3, 1), (6, 24, 2, 3, 2), (6, 40, 2, 5, 2), (6, 80, 3, 3, 2), (6, 112, 3, 5, 1),
              (6, 192, 4, 5, 2), (6, 320, 1, 3, 1))
    DROPOUT = 0.2
    DROP_CONNECT = 0.2

    def __init__(self, classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, 32))
        total = sum(stage[2] for stage in self.STAGES)
        blocks, cin, index = [], 32, 0
        for expansion, cout, count, kernel, stride in self.STAGES:
            for i in range(count):
                blocks.append(_MBConv(cin, cout, kernel, stride if i == 0 else 1, expansion,
                                      self.DROP_CONNECT * index / total))
                cin, index = cout, index + 1
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(_swish(self.stem(x)))
        out = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return self.head(F.dropout(out, self.DROPOUT, self.training))
