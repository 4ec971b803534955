"""The Chinese words that the chapters' own code puts into a page (:func:`bnbook.i18n.t`).

A glued phrase ("from 0.01 to 1.6", "at steps 50 and 200") or a Markdown table's header and
text cells is part of the page's prose, so it follows the page's language; a chapter imports
``t`` as ``tr`` and gives it the English template, numbers formatted by its placeholders:
``tr("from {lo:g} to {hi:g}", lo=..., hi=...)``. This table is keyed by that template, with the
same placeholders, like :data:`bnbook.i18n_zh.ZH` (the figures' and widgets' words, which
``t`` consults first: a text both use, such as "test accuracy (%)" or "seed {seed}", is
there). Each phrase is written to fit the translated sentence around its ``{glue:text}`` in
``locales/zh_CN/LC_MESSAGES/chapters/*.po``; terms as in ``locales/zh_CN/GLOSSARY.md``; code
(`FrozenBatchNorm2d`, running_var, dtype names) stays code. ``tests/book/test_i18n.py``
fails when a literal a chapter gives to ``tr(...)`` or to ``markdown_table`` has no entry,
and a Chinese build records any other text that had none (``scripts/check_po.py``).
"""

# ruff: noqa: E501 (one entry a line: long English keys stay whole, so that they can be searched)
from __future__ import annotations

#: English template → Chinese, for the texts the chapters' code puts into the page.
ZH_PAGES: dict[str, str] = {
    # 01_worked_example: the normalization family (markdown_table)
    "torch module": "torch 模块",
    "pools over": "在哪些维度上汇总",
    "(μ, σ²) pairs": "(μ, σ²) 的组数",
    "values in each": "每组的值数",
    "image 0 depends on image 1": "图像 0 是否依赖图像 1",
    "batch, height, width": "批量、高、宽",
    "channels, height, width": "通道、高、宽",
    "height, width": "高、宽",
    "a group's channels, height, width": "组内的通道、高、宽",
    "yes": "是",
    "no": "否",
    # 02_std_vs_variance (markdown_table)
    "call": "调用",
    "divides by": "除以",
    "channel 0": "通道 0",
    "shape (N, C, H, W)": "形状 (N, C, H, W)",
    "homemade: output var": "手写实现：输出方差",
    "BatchNorm2d: output var": "BatchNorm2d：输出方差",
    # 03_running_stats (markdown_table)
    "lag (3 seeds)": "滞后（3 个随机种子）",
    "noise (std)": "噪声（标准差）",
    "total error (rms)": "总误差（均方根）",
    "PyTorch `BatchNorm2d`": "PyTorch `BatchNorm2d`",
    "Keras `BatchNormalization`": "Keras `BatchNormalization`",
    "default momentum p": "默认动量 p",
    "share of the new batch in one update, p = 0.3": "一次更新中新批量所占的比例，p = 0.3",
    "variance in the running estimate": "运行估计所用的方差",
    "unbiased, Σ(x − μ)²/(m − 1)": "无偏，Σ(x − μ)²/(m − 1)",
    "biased, Σ(x − μ)²/m": "有偏，Σ(x − μ)²/m",
    "default ε": "默认 ε",
    "where ε goes": "ε 的位置",
    "inside: (x − μ)/√(σ² + ε)": "根号内：(x − μ)/√(σ² + ε)",
    "outside: (x − μ)/(σ + ε)": "根号外：(x − μ)/(σ + ε)",
    "channel axis": "通道轴",
    "γ, β, mean, variance": "γ、β、均值、方差",
    "largest |x̂| seen": "观测到的最大 |x̂|",
    "values within 2 % of the bound": "距上界 2 % 以内的值所占比例",
    # 04_backward: the gradient check
    "method": "方法",
    "staged (bnlib)": "分步形式（bnlib）",
    "compact (bnlib)": "紧凑形式（bnlib）",
    "finite differences": "有限差分",
    # 06_training: glued phrases ("学习率为 {range_batch}", "学习率 {slow_rates} 并没有发散",
    # "（{ckpt_all} 在每个随机种子上都是如此）") and two tables
    "only at {rate:g}": "{rate:g}，仅此一个",
    "from {lo:g} to {hi:g}": "{lo:g} 到 {hi:g}",
    "{a} and {b}": "{a} 和 {b}",
    "at step {steps}": "第 {steps} 步",
    "at steps {steps}": "第 {steps} 步",
    "network": "网络",
    "eval mode": "评估模式",
    "training mode, same batch size": "训练模式（批量大小相同）",
    "training mode, batches of {bs}": "训练模式，每批 {bs} 张",
    # 07_after_training: the cost of batch norm, "在默认动量下，重新计算 {default_change_text}。",
    # the fine-tuning methods
    "BN input (C, H, W)": "BN 的输入 (C, H, W)",
    "conv FLOPs": "卷积 FLOPs",
    "BN FLOPs": "BN FLOPs",
    "BN / conv": "BN / 卷积",
    "BN bytes read + written": "BN 读写的字节数",
    "leaves test accuracy unchanged on every seed": "在每个随机种子上都不改变测试准确率",
    "moves test accuracy by at most {points:.1f} points": "使测试准确率最多变化 {points:.1f} 个百分点",
    "`.eval()` on the batch norms": "对批量归一化层调用 `.eval()`",
    "... then `model.train()`": "……再调用 `model.train()`",
    "`requires_grad=False`": "`requires_grad=False`",
    "`FrozenBatchNorm2d`": "`FrozenBatchNorm2d`",
    "nothing frozen": "不冻结",
    "not fine-tuned": "未微调",
    "moved": "变了",
    "fixed": "不变",
    "γ and β": "γ 和 β",
    "running statistics": "运行统计量",
    "accuracy, brightened": "调亮图像上的准确率",
    # 08_at_scale: numerical precision, mixed precision, sharded statistics
    "distinct values, channel 0": "通道 0 的不同取值个数",
    "output std": "输出的标准差",
    "torch on the CPU": "torch（CPU 上）",
    "output": "输出",
    "max error vs float32 BN": "相对 float32 BN 的最大误差",
    "float16 input, float32 module": "float16 输入，float32 模块",
    "bfloat16 input, float32 module": "bfloat16 输入，float32 模块",
    "float16 input, module.half()": "float16 输入，module.half()",
    "float32 input, autocast(bfloat16)": "float32 输入，autocast(bfloat16)",
    "bfloat16 input, autocast(bfloat16)": "bfloat16 输入，autocast(bfloat16)",
    "dtype policy": "dtype 策略",
    "max error": "最大误差",
    "variance error": "方差误差",
    "rank": "进程号",
    "images": "图像数",
    "max \\|y − whole\\|": "最大 \\|y − 整个批量\\|",
    "max \\|dx − whole\\|": "最大 \\|dx − 整个批量\\|",
    # appendix_running_stats (markdown_table)
    "batches to forget the start": "遗忘初始值所需的批量数",
    "sd of running_mean: formula": "running_mean 的标准差：公式",
    "measured": "实测",
    # appendix_small_batch: the learning rates chosen
    "norm": "归一化",
}
