"""The model card (``README.md``) of a hub folder: YAML metadata the Hub reads, and a body
that says what the network is, where its weights came from, how to feed it, and what was
checked. Everything in it comes from the folder's ``config.json`` and the zoo table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..arch import ZooCheckpoint

#: The licence of the official video-nonlocal-net model zoo (its README: CC BY-NC 4.0).
ZOO_LICENSE = "cc-by-nc-4.0"
PAPER_URL = "https://arxiv.org/abs/1711.07971"
OFFICIAL_REPO = "https://github.com/facebookresearch/video-nonlocal-net"
CITATION = """@inproceedings{wang2018nonlocal,
  title     = {Non-local Neural Networks},
  author    = {Wang, Xiaolong and Girshick, Ross and Gupta, Abhinav and He, Kaiming},
  booktitle = {The IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2018}
}"""


def card_metadata(config: Mapping[str, Any], *, license: str, datasets: list[str]) -> dict[str, Any]:
    """The YAML front matter of the card."""
    arch = config["arch"]
    tags = ["video-classification", "action-recognition", "non-local-neural-networks",
            f"{arch['family'] or 'video'}-resnet{arch['depth']}", "caffe2-port", "pytorch",
            "safetensors"]
    if config.get("onnx"):
        tags.append("onnx")
    return {"license": license, "library_name": "nlconvert", "pipeline_tag": "video-classification",
            "tags": tags, "datasets": datasets}


def _yaml(meta: Mapping[str, Any]) -> str:
    """The front matter as YAML (plain scalars and lists of plain strings only)."""
    lines = ["---"]
    for key, value in meta.items():
        if isinstance(value, list):
            if value:
                lines.append(f"{key}:")
                lines += [f"- {v}" for v in value]
        else:
            lines.append(f"{key}: {value}")
    lines.append("---")
    return "\n".join(lines)


def model_card(config: Mapping[str, Any], *, repo_name: str, license: str, datasets: list[str],
               published: ZooCheckpoint | None, protocol: Mapping[str, Any]) -> str:
    """The whole ``README.md`` of a hub folder called `repo_name`."""
    arch = config["arch"]
    name = config["architecture"]
    prov = config.get("provenance") or {}
    inp = config["input"]
    parts = [_yaml(card_metadata(config, license=license, datasets=datasets)), "",
             f"# {name}: Non-local Neural Networks, converted from Caffe2 to PyTorch", "",
             f"A port of a video classification network of *Non-local Neural Networks* (Xiaolong "
             f"Wang, Ross Girshick, Abhinav Gupta, Kaiming He, CVPR 2018, [{PAPER_URL}]({PAPER_URL})) "
             f"from the Caffe2 checkpoint of the official code ([{OFFICIAL_REPO}]({OFFICIAL_REPO})) "
             f"to PyTorch, by [nlconvert](https://pypi.org/project/nlconvert/). The weights are the "
             f"checkpoint's own, renamed and reshaped only; nothing was retrained.", "",
             "## The network", "",
             f"- {config['description']}",
             f"- ResNet-{arch['depth']}, {arch['family'].upper() or '?'} ({_temporal(arch)}), "
             f"{arch['stem']} stem, {arch['norm'].upper()} normalisation"
             + (f", non-local blocks after {_nl(arch)}" if _nl(arch) else ", no non-local block"),
             f"- Clips of {config['frames']} frames sampled every {config['sample_rate']} frames; "
             f"{config['num_classes']} classes (`id2label` in config.json)",
             *[f"- Head `{h}`: {d}" for h, d in config["heads"].items()], "",
             "## Provenance", "",
             "| | |", "|---|---|",
             *[f"| {k} | `{v}` |" for k, v in prov.items() if v not in (None, "")], "",
             "## How to load it", "",
             "```python",
             "import nlconvert  # pip install 'nlconvert[hub]'",
             f'model = nlconvert.NLResNet.from_pretrained("{repo_name}")  # or the local folder',
             f'model = nlconvert.load_model("{repo_name}")  # a downloaded folder: every nlconvert API takes it',
             "",
             "import torch  # the same network through torch.hub (the folder as weights)",
             f'model = torch.hub.load("<owner>/nlconvert", "{name}", weights="path/to/{repo_name}")',
             "```", "",
             "```",
             f"nlconvert predict {repo_name} video.mp4              # the paper's 30-view test",
             f"nlconvert export-mmaction2 {repo_name} mm/          # mmaction2 config + checkpoint",
             "```", "",
             "In mmaction2, after `export-mmaction2`: `mmaction.apis.init_recognizer(\"mm/<name>.py\", "
             "\"mm/<name>.pth\")` builds the same network (see nlconvert's README, \"Loading these "
             "checkpoints elsewhere\").", "",
             "## Input and test protocol (exactly as the official code)", "",
             f"- Input `N x 3 x T x H x W`, float32, {inp['channels']} in [{inp['value_range'][0]}, "
             f"{inp['value_range'][1]}], normalised as (pixel - {inp['mean'][0]}) / {inp['std'][0]} "
             "on every channel.",
             f"- Training clip: {config['frames']} frames, every {config['sample_rate']}th, "
             f"{config['crop_size']}x{config['crop_size']} crop; the `clip` head is exact at that size.",
             f"- Test: frames decoded as RGB with the BT.601 matrix; short side resized to "
             f"{protocol['scale']} (bilinear); {protocol['clips']} clips x {protocol['crops']} "
             f"crops of {protocol['crop']}x{protocol['crop']} = {protocol['clips'] * protocol['crops']} "
             f"views; clip j starts at floor(j*N/{protocol['clips']}) and wraps past the end; "
             "the `fully_conv` head on each view; the video's score is the sum of the views' "
             "softmaxes.", "",
             "## Parity with the Caffe2 network", "",
             *_parity_lines(config), "",
             "## Accuracy", "",
             _accuracy(published), "",
             "## Citation", "", "```bibtex", CITATION, "```", "",
             "## Licence", "",
             _license_text(license), ""]
    return "\n".join(parts)


def _temporal(arch: Mapping[str, Any]) -> str:
    if any(u for stage in arch["temporal_convs"] for u in stage) or arch["conv1_temporal"]:
        return "convolution kernels inflated in time"
    return "2-D convolutions: time mixed only by pooling and non-local blocks"


def _nl(arch: Mapping[str, Any]) -> str:
    return ", ".join(f"{stage} blocks {list(idx)}" for stage, idx in arch["nonlocal_after"] if idx)


def _parity_lines(config: Mapping[str, Any]) -> list[str]:
    parity = config.get("parity") or {}
    lines: list[str] = []
    if not parity.get("checked"):
        lines.append("Not checked when this folder was written (`export-hub --no-parity`).")
    else:
        lines += [f"Checked by nlconvert {parity['nlconvert_version']} on {parity['input']}, "
                  f"`{parity['head']}` head, against {parity['reference']}, layer by layer "
                  f"({parity['layers_compared']} tensors; tolerance {parity['tolerance']}).", "",
                  "| output | shape | max abs err | max rel err | cosine | top-1 agrees |",
                  "|---|---|---|---|---|---|"]
        for row in parity["outputs"]:
            lines.append(f"| {row['name']} ({row['side']}) | {'x'.join(map(str, row['shape']))} | "
                         f"{row['max_abs_err']:.3g} | {row['max_rel_err']:.3g} | {row['cosine']:.9f} | "
                         f"{'yes' if parity['top1_agree'] else 'no'} |")
        lines += ["", f"Worst layer: `{parity['worst_layer']}` (relative error "
                      f"{parity['worst_rel_err']:.3g}). Result: {'pass' if parity['ok'] else 'FAIL'}."]
    onnx = config.get("onnx")
    if onnx:
        lines += ["", f"`{onnx['file']}` ({onnx['head']} head, opset {onnx['opset']}, "
                      f"{onnx['layout']} layout) against PyTorch in ONNX Runtime:"]
        lines += [f"- {check}" for check in onnx["checks"]]
    return lines


def _accuracy(published: ZooCheckpoint | None) -> str:
    if published is None or published.top1 is None:
        return ("No published accuracy: these weights are not a checkpoint of the official model "
                "zoo (or the zoo gives no number for it). Measure it with `nlconvert evaluate`.")
    return (f"Published by the official README for `{published.file}.pkl` (Kinetics-400 validation, "
            f"30-view test): **top-1 {published.top1}%, top-5 {published.top5}%**. This is the "
            "published number, not measured by nlconvert on this folder; the parity above is "
            "what was measured.")


def _license_text(license: str) -> str:
    if license == ZOO_LICENSE:
        return ("CC BY-NC 4.0, the licence under which the video-nonlocal-net model zoo was "
                "released: attribution, non-commercial use only.")
    if license == "other":
        return ("Not stated: these weights are not an official zoo checkpoint, and no licence was "
                "given when the folder was written (`export-hub --license`).")
    return f"`{license}`, as stated by whoever wrote this folder."
