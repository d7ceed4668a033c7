"""The network rewritten on frame-major tensors, for a faster ONNX graph on CPUs.

ONNX Runtime's CPU provider runs a 3-D ``Conv`` as im2col + SGEMM, but a 2-D ``Conv`` through
its NCHWc kernels (blocked channels, AVX-512), which are markedly faster. Every convolution of
the NL-ResNet but the temporal ones has a (1, kh, kw) kernel, i.e. it is a 2-D convolution
applied to each frame. So :class:`FrameMajorNet` keeps activations as ``(N*T) x C x H x W``
(frame ``t`` of clip ``n`` at row ``n*T + t``) from the input to res5 and computes:

* a (1, kh, kw) convolution as one ``Conv2d`` over all frames;
* a (kt, kh, kw) convolution (conv1, the 3x1x1 branch2a of I3D) as a ``Conv2d`` plus one
  matrix product over time: either gather the kt input frames of each output frame into the
  channels first (``B @ x``, then a ``Conv2d`` on kt*C_in channels), or run a ``Conv2d`` to
  kt*C_out channels and sum the shifted frames (``A @ z``). The 0/1 matrices A and B are
  built from T at run time, so the frame count stays dynamic; the cheaper form is chosen per
  layer from the channel counts;
* temporal max pools as maxima of strided frame slices, spatial ones as ``MaxPool2d``;
* the non-local block on the same layout (its groups of frames are consecutive rows);
* the head on the N x C x T x H x W tensor again (it is small there).

Norms are folded into the convolutions (in float64, :func:`~nlconvert.runtime.fast.fold_norms`).
The arithmetic is the same as the exact model's up to the order of float32 sums (relative
error ~1e-5); :func:`nlconvert.runtime.onnx_export.export_onnx` verifies every file it writes against
the exact model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..arch import ArchSpec
from ..model import NLResNet, NonLocalBlock
from ..model.nonlocal_block import normalize_affinity
from ..model.resnet import Bottleneck, ClassifierHead, Stage
from .fast import fold_norms


def shift_matrix(t_out: int, t_in: int, kernel: int, stride: int, pad: int,
                 dtype: torch.dtype) -> torch.Tensor:
    """``M[o, i, s] = 1`` where input frame ``s = o*stride + i - pad`` (zero padding elsewhere).

    Shape (t_out, kernel, t_in). Built from ``arange`` so that an ONNX trace keeps T dynamic.
    """
    o = torch.arange(t_out).view(-1, 1, 1)
    i = torch.arange(kernel).view(1, -1, 1)
    s = torch.arange(t_in).view(1, 1, -1)
    return (s == o * stride + i - pad).to(dtype)


class FrameConv(nn.Module):
    """A ``Conv3d`` (norm folded, bias kept) applied to ``(N*T) x C x H x W`` frames."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        if isinstance(conv.padding, str):
            raise TypeError("FrameConv needs numeric padding")
        kt, kh, kw = (int(v) for v in conv.kernel_size)
        st, sh, sw = (int(v) for v in conv.stride)
        pt, ph, pw = (int(v) for v in conv.padding)
        c_in, c_out = conv.in_channels, conv.out_channels
        self.kt, self.st, self.pt, self.c_out = kt, st, pt, c_out
        weight = conv.weight.detach()  # O x I x kt x kh x kw
        dtype, device = weight.dtype, weight.device
        bias = (conv.bias.detach() if conv.bias is not None
                else torch.zeros(c_out, dtype=dtype, device=device))
        # Gather the input frames (traffic ~ kt*C_in) or sum shifted outputs (~ kt*C_out).
        # Spatial strides shrink the output, so compare per output position.
        self.gather = kt > 1 and c_in < c_out * sh * sw
        if kt == 1 or self.gather:
            # Gathered channels are ordered (i, c): frame offset major, like B @ x produces.
            w2 = weight.permute(0, 2, 1, 3, 4).reshape(c_out, kt * c_in, kh, kw)
            self.conv = nn.Conv2d(kt * c_in, c_out, (kh, kw), (sh, sw), (ph, pw),
                                  dtype=dtype, device=device)
            self.conv.bias.data.copy_(bias)  # type: ignore[union-attr]
            self.post_bias = None
        else:
            # Outputs ordered (i, o): z[:, i*C_out + o] is offset i's contribution to o.
            w2 = weight.permute(2, 0, 1, 3, 4).reshape(kt * c_out, c_in, kh, kw)
            self.conv = nn.Conv2d(c_in, kt * c_out, (kh, kw), (sh, sw), (ph, pw), bias=False,
                                  dtype=dtype, device=device)
            self.post_bias = nn.Parameter(bias.view(1, -1, 1, 1).clone())
        self.conv.weight.data.copy_(w2)

    def out_frames(self, t: int) -> int:
        return (t + 2 * self.pt - self.kt) // self.st + 1

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        if self.kt == 1 and self.st == 1:
            return self.conv(x)
        _, c, h, w = x.shape
        t_out = self.out_frames(t)
        if self.post_bias is None:  # gather the frames (or kt == 1 with a temporal stride)
            m = shift_matrix(t_out, t, self.kt, self.st, self.pt, x.dtype).reshape(-1, t)
            frames = torch.matmul(m, x.reshape(-1, t, c * h * w))  # N x (t_out*kt) x CHW
            return self.conv(frames.reshape(-1, self.kt * c, h, w))
        z = self.conv(x)
        _, _, h2, w2 = z.shape
        # N x (T*kt) x (C_out*H*W): row s*kt + i is input frame s through offset i.
        z = z.reshape(-1, t * self.kt, self.c_out * h2 * w2)
        m = shift_matrix(t_out, t, self.kt, self.st, self.pt, x.dtype)
        m = m.transpose(1, 2).reshape(t_out, t * self.kt)
        y = torch.matmul(m, z).reshape(-1, self.c_out, h2, w2)
        return y + self.post_bias


def frame_max_pool(x: torch.Tensor, t: int, kernel: int, stride: int
                   ) -> tuple[torch.Tensor, int]:
    """Max pool over time (no padding, floor) of ``(N*T) x C x H x W`` frames; the new T too."""
    if kernel == 1 and stride == 1:
        return x, t
    _, c, h, w = x.shape
    t_out = (t - kernel) // stride + 1
    clips = x.reshape(-1, t, c, h, w)
    out = clips[:, 0:(t_out - 1) * stride + 1:stride]
    for i in range(1, kernel):
        out = torch.maximum(out, clips[:, i:i + (t_out - 1) * stride + 1:stride])
    return out.reshape(-1, c, h, w), t_out


class FrameBottleneck(nn.Module):
    """:class:`~nlconvert.model.resnet.Bottleneck` on frames (norms already folded)."""

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        self.conv_a = FrameConv(block.conv_a)
        self.conv_b = FrameConv(block.conv_b)
        self.conv_c = FrameConv(block.conv_c)
        shortcut = getattr(block.shortcut, "conv", None)
        self.shortcut = FrameConv(shortcut) if isinstance(shortcut, nn.Conv3d) else None

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        y = F.relu(self.conv_a(x, t))
        y = F.relu(self.conv_b(y, t))
        y = self.conv_c(y, t)
        return F.relu(y + (self.shortcut(x, t) if self.shortcut is not None else x))


class FrameNonLocal(nn.Module):
    """:class:`~nlconvert.model.NonLocalBlock` on frames, grouped or not (norm folded)."""

    def __init__(self, block: NonLocalBlock) -> None:
        super().__init__()
        self.theta = FrameConv(block.theta)
        self.phi = FrameConv(block.phi)
        self.g = FrameConv(block.g)
        self.out = FrameConv(block.out)
        self.inner = block.inner
        self.use_softmax = block.use_softmax
        self.scale = block.scale
        self.pool_stride = block.pool_stride
        self.group_size = block.group_size

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        _, _, h, w = x.shape
        ci = self.inner
        # A group (or a whole clip) is `span` consecutive frames: one attention problem each.
        span = self.group_size or t
        theta = self.theta(x, t).reshape(-1, span, ci, h * w).transpose(2, 3)
        theta = theta.reshape(-1, span * h * w, ci)  # P x THW x Ci
        src = F.max_pool2d(x, self.pool_stride, self.pool_stride) if self.pool_stride else x
        hp, wp = src.shape[-2:]
        phi = self.phi(src, t).reshape(-1, span, ci, hp * wp).transpose(1, 2)
        phi = phi.reshape(-1, ci, span * hp * wp)  # P x Ci x THW'
        g = self.g(src, t).reshape(-1, span, ci, hp * wp).transpose(2, 3)
        g = g.reshape(-1, span * hp * wp, ci)  # P x THW' x Ci
        affinity = normalize_affinity(torch.matmul(theta, phi), self.use_softmax, self.scale)
        y = torch.matmul(affinity, g)  # P x THW x Ci
        y = y.reshape(-1, span, h * w, ci).transpose(2, 3).reshape(-1, ci, h, w)
        return x + self.out(y, t)


class FrameMajorNet(nn.Module):
    """An :class:`~nlconvert.model.NLResNet` computed on frame-major tensors (see module doc).

    Input and output as the source model: float32 N x 3 x T x H x W -> N x classes, with the
    head the source had when this was built. The source is not changed.
    """

    def __init__(self, model: NLResNet) -> None:
        super().__init__()
        net = copy.deepcopy(model).eval()
        fold_norms(net)
        self.arch: ArchSpec = model.arch
        self.stem = FrameConv(net.stem.conv)
        self.pool1_kernel: tuple[int, int, int] = net.stem.pool_kernel
        self.pool1_stride: tuple[int, int, int] = net.stem.pool_stride
        self.stages = nn.ModuleList()
        stages: tuple[Stage, ...] = (net.res2, net.res3, net.res4, net.res5)
        for stage in stages:
            layers = nn.ModuleList()
            after = dict(stage.nonlocal_blocks.items())  # block index (str) -> NonLocalBlock
            for i, block in enumerate(stage.blocks):
                assert isinstance(block, Bottleneck)
                layers.append(FrameBottleneck(block))
                nl = after.get(str(i))
                if isinstance(nl, NonLocalBlock):
                    layers.append(FrameNonLocal(nl))
            self.stages.append(layers)
        self.head: ClassifierHead = net.head
        self.eval()

    @property
    def head_mode(self) -> str:
        return self.head.mode

    def trunk(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The res4 and res5 activations, back in N x C x T x H x W."""
        _, c, t, h, w = clip.shape
        x = clip.transpose(1, 2).reshape(-1, c, h, w)
        x = F.relu(self.stem(x, t))
        t = self.stem.out_frames(t)
        x = F.max_pool2d(x, self.pool1_kernel[1:], self.pool1_stride[1:])
        x, t = frame_max_pool(x, t, self.pool1_kernel[0], self.pool1_stride[0])
        res4 = x
        for index, layers in enumerate(self.stages):
            if index == 1:  # pool2 between res2 and res3
                x, t = frame_max_pool(x, t, 2, 2)
            for layer in layers:  # type: ignore[attr-defined]
                x = layer(x, t)
            if index == 2:
                res4 = x
        return _clips(res4, t), _clips(x, t)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(clip)[1])

    def forward_features(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The clip head's logits, pool5 and res4 mean, as ``NLResNet.forward_features``."""
        return self.head.features(*self.trunk(clip))


def _clips(frames: torch.Tensor, t: int) -> torch.Tensor:
    """``(N*T) x C x H x W`` frames -> N x C x T x H x W."""
    _, c, h, w = frames.shape
    return frames.reshape(-1, t, c, h, w).transpose(1, 2)
