"""The Chinese words of the book's figures and widgets (:func:`bnbook.i18n.t`).

Keyed by the English template exactly as given to ``t(...)`` in bnbook's modules, with the
same ``{placeholders}``; terms as in ``locales/zh_CN/GLOSSARY.md`` (批量归一化, 运行均值,
动量, …). Code names (running_mean, bn.train()) and math stay as they are. The explorers'
texts read as the page's JavaScript has them (``js/i18n.js``), since the static frames and
the live explorers show the same figure. ``tests/book/test_i18n.py`` lists every text that
has no entry here; ``make check-po`` also lists the texts chapters pass to figure functions
(titles, legend names such as "CNN", "block 1", "8 per device") that the last Chinese build
drew without an entry. A name that stays as it is in Chinese (CNN, Welford) gets an entry
equal to its key.

A Chinese entry writes its math in Unicode (μ, σ, ℓ, Σ), never as ``$…$``: a text with
``$…$`` is drawn by mathtext, whose fonts have no CJK glyphs (every Chinese character of
that text would be a box).
"""

from __future__ import annotations

ZH: dict[str, str] = {
    # ----------------------------------------------------------------------------------
    # Shared by several figures
    # ----------------------------------------------------------------------------------
    "channel {c}": "通道 {c}",
    "image {n}": "图像 {n}",
    "mean": "均值",
    "population mean": "总体均值",
    "each batch's mean": "每个批量的均值",
    "step (batches seen)": "步数（已处理的批量数）",
    "running_mean − population mean": "running_mean − 总体均值",
    "training step": "训练步",
    "test accuracy (%)": "测试准确率（%）",
    "batch size N": "批量大小 N",
    # ----------------------------------------------------------------------------------
    # tensor_figures.py: chapter 1, the tensor and the normalization family
    # ----------------------------------------------------------------------------------
    "channel {c}\nμ = {mean}, σ² = {var}": "通道 {c}\nμ = {mean}, σ² = {var}",
    "x: {n} images × {c} channels × {h}×{w} pixels": "x：{n} 幅图像 × {c} 个通道 × {h}×{w} 像素",
    "from image {n}": "来自图像 {n}",
    "channels first, the rest flattened: {c} rows of N·H·W = {m}": (
        "通道在前，其余展平：{c} 行，每行 N·H·W = {m} 个值"
    ),
    "per channel,\nover batch and space": "每个通道，\n跨批量和空间",
    "per image,\nover channels and space": "每幅图像，\n跨通道和空间",
    "per image and channel,\nover space": "每幅图像的每个通道，\n跨空间",
    "per image and group,\nover its channels and space": "每幅图像的每个组，\n跨组内通道和空间",
    "GroupNorm ({groups} groups)": "GroupNorm（{groups} 组）",
    "{k} statistics × {n} values": "{k} 组统计量 × 每组 {n} 个值",
    "Which values share a mean and variance (one colour per statistic)": (
        "哪些值共用一组均值和方差（每组统计量一种颜色）"
    ),
    "{n} images (rows n) × {c} channels (columns c) × {h}×{w} pixels": (
        "{n} 幅图像（行 n）× {c} 个通道（列 c）× {h}×{w} 像素"
    ),
    # variance_figures.py: chapter 2, biased and unbiased variance, ε
    "biased variance (what BatchNorm does): 1": "有偏方差（BatchNorm 的做法）：1",
    "unbiased variance: $(m-1)/m$": "无偏方差：(m − 1)/m",
    "measured on random tensors (bnlib)": "在随机张量上的测量值（bnlib）",
    "m = N·H·W, values per channel (log scale)": "m = N·H·W，每个通道的值数（对数坐标）",
    "variance of the output": "输出的方差",
    "Normalizing with the unbiased variance shrinks the output": "用无偏方差归一化会使输出变小",
    "channel variance σ² = {v}": "通道方差 σ² = {v}",
    "PyTorch's default ε = {eps}": "PyTorch 的默认值 ε = {eps}",
    "ε (log scale)": "ε（对数坐标）",
    "standard deviation of the output": "输出的标准差",
    "ε barely matters, until it is comparable to the channel's variance": (
        "ε 几乎没有影响，直到它与通道方差相当"
    ),
    # backward_figures.py: chapter 4, the backward pass
    "$dy$ (given)": "dy（已知）",
    "tensor of shape (N, C, H, W)": "形状为 (N, C, H, W) 的张量",
    "one number per channel": "每个通道一个数",
    "forward pass": "前向传播",
    "gradient received (backward)": "收到的梯度（反向传播）",
    r"channel {c}: $|\sum dx\,\hat x|$": "通道 {c}：|Σ dx·x̂|",
    r"$|\sum dx|$ (rounding level)": "|Σ dx|（舍入误差量级）",
    "per-channel sum (absolute value)": "逐通道求和（绝对值）",
    # running_figures.py: chapter 3, running statistics
    "momentum=None (cumulative)": "动量 = None（累积平均）",
    "momentum = {p}": "动量 = {p}",
    "each batch's statistic (variance: unbiased)": "每个批量的统计量（方差：无偏）",
    "population value": "总体值",
    "expected: v + (r₀ − v)(1 − p)ᵗ": "期望：v + (r₀ − v)(1 − p)ᵗ",
    "running_mean, channel {c}": "running_mean，通道 {c}",
    "running_var, channel {c}": "running_var，通道 {c}",
    "momentum {p}: memory 1/p = {memory} batches": "动量 {p}：记忆 1/p = {memory} 个批量",
    "k: how many steps ago the batch was seen": "k：该批量是多少步之前见到的",
    "weight in the running value": "在运行值中的权重",
    "Weight of the k-th past batch: momentum·(1 − momentum)^k": (
        "k 步之前那个批量的权重：动量·(1 − 动量)^k"
    ),
    "closed form: {f}": "闭式表达：{f}",
    "channel {c} (simulated)": "通道 {c}（模拟）",
    "batch size N (values per channel m = N·H·W)": "批量大小 N（每个通道的值数 m = N·H·W）",
    "sd of batch mean / σ": "批量均值的标准差 / σ",
    "sd of batch variance / σ²": "批量方差的标准差 / σ²",
    "batch means scatter like 1/√m": "批量均值按 1/√m 离散",
    "batch variances scatter like √2/√m": "批量方差按 √2/√m 离散",
    "with population statistics: {v}": "使用总体统计量：{v}",
    "output of the same input value in training mode": "同一输入值在训练模式下的输出",
    "One input, many batches: training-mode output depends on the batch": (
        "一个输入，多个批量：训练模式的输出取决于批量"
    ),
    "running_mean on a drifting stream": "漂移数据流上的 running_mean",
    "the error: lag (offset) and noise (wiggle)": "误差：滞后（偏移）与噪声（抖动）",
    # ----------------------------------------------------------------------------------
    # widgets.py, explorer_data.py: the explorers (as js/i18n.js words them)
    # ----------------------------------------------------------------------------------
    "On this page the slider steps through frames computed with bnlib when the book was "
    "built. To move it freely and recompute live, open the chapter in Colab or Binder "
    "(rocket button at the top of the page) or download it as a notebook and run it in "
    "Jupyter; the cell <code>widgets.{name}()</code> is the live explorer.": (
        "本页的滑块在构建本书时用 bnlib 算好的各帧之间切换。要自由拖动并实时重新计算，"
        "请在 Colab 或 Binder 中打开本章（页面顶部的火箭按钮），或将本章下载为笔记本并在 "
        "Jupyter 中运行；单元格 <code>widgets.{name}()</code> 就是实时的交互探索图。"
    ),
    "ε under the square root": "平方根下的 ε",
    "normalized output of each of the 16 values of the channel": "该通道 16 个值各自归一化后的输出",
    "the 16 outputs of each channel (its variance σ² on the left)": (
        "每个通道的 16 个输出（左侧为其方差 σ²）"
    ),
    "ε = {eps}: output std of the four channels, top to bottom: {stds}": (
        "ε = {eps}：四个通道（自上而下）输出的标准差：{stds}"
    ),
    "ε = {eps} is far below every channel's variance: each channel is scaled "
    "to standard deviation 1, even the nearly constant one (σ² = "
    "{var}), whose tiny noise now looks as large as real signal.": (
        "ε = {eps} 远小于每个通道的方差：每个通道都被缩放到标准差 1，连几乎恒定的通道"
        "（σ² = {var}）也不例外，其微小的噪声看起来和真实信号一样大。"
    ),
    "ε = {eps} is as large as the variances themselves: it no longer just "
    "guards the division, it shrinks every output (std √(σ²/(σ² + ε)) < 1), "
    "so batch norm stops normalizing.": (
        "ε = {eps} 与方差本身一样大：它不再只是防止除以零，而会缩小每个输出"
        "（标准差 √(σ²/(σ² + ε)) < 1），批量归一化不再起归一化作用。"
    ),
    "Momentum on a drifting stream": "漂移数据流上的动量",
    "momentum": "动量",
    "running_mean": "running_mean（运行均值）",
    "where lag and noise are measured": "测量滞后与噪声的区间",
    "momentum = {p}: in the grey window the running mean lags behind the "
    "population mean by {lag} on average, and its noise (std) is {noise}": (
        "动量 = {p}：在灰色窗口中，运行均值平均落后总体均值 {lag}，其噪声（标准差）为 {noise}"
    ),
    "momentum = 0: the running mean never moves from its start, 0; evaluation mode "
    "would normalize with that, whatever the data do.": (
        "动量 = 0：运行均值始终停在初值 0；评估模式将用它归一化，无论数据如何。"
    ),
    "momentum = 1: the running mean is just the last batch's mean; nothing is averaged, "
    "so evaluation mode inherits one batch's noise.": (
        "动量 = 1：运行均值就是最后一个批量的均值；没有任何平均，评估模式继承了单个批量的噪声。"
    ),
    "Batch size and noisy batch statistics": "批量大小与有噪声的批量统计量",
    "batch size": "批量大小",
    "batch mean": "批量均值",
    "batch variance (biased)": "批量方差（有偏）",
    "training output of x = μ + σ": "x = μ + σ 的训练模式输出",
    "eval output": "评估模式输出",
    "population mean {mu}": "总体均值 {mu}",
    "population σ² {v}": "总体 σ² {v}",
    "fraction of {n} batches": "{n} 个批量中的比例",
    "batch size {n}: batch means spread with std {mean_std} (σ/√N = {bound}), "
    "the same input's training output with std {out_std}": (
        "批量大小 {n}：批量均值的标准差为 {mean_std}（σ/√N = {bound}），同一输入在训练模式下"
        "输出的标准差为 {out_std}"
    ),
    "batch size {n}: bnlib, like PyTorch, refuses to normalize in "
    "training mode (ValueError: Expected more than 1 value per channel when "
    "training). A batch of one 1×1 feature map has a single value per channel, "
    "so its variance is 0 and its output would always be 0.": (
        "批量大小 {n}：bnlib 与 PyTorch 一样，在训练模式下拒绝归一化（ValueError: Expected "
        "more than 1 value per channel when training）。一个 1×1 特征图的批量每个通道只有"
        "一个值，方差为 0，输出将恒为 0。"
    ),
    "batch size 2: two values normalized by their own mean and variance always become "
    "−1 and +1, whatever they were: the output says only which one is larger.": (
        "批量大小 2：两个值用它们自己的均值和方差归一化后总是变成 −1 和 +1：输出只说明哪个更大。"
    ),
    "batch size 3: no output can pass ±√2 ≈ 1.41 (the bound √(m − 1)), and the probe's "
    "outputs pile up just below it whenever the other two values are close.": (
        "批量大小 3：任何输出都不能超过 ±√2 ≈ 1.41（上界 √(m − 1)），当另外两个值接近时，"
        "探针的输出会堆积在该上界之下。"
    ),
    "batch size 4: batch statistics scatter widely, so the same input gives very "
    "different training-mode outputs from batch to batch.": (
        "批量大小 4：批量统计量波动很大，同一输入在不同批量中的训练模式输出差别很大。"
    ),
    # ----------------------------------------------------------------------------------
    # train_figures.py: chapter 6, training
    # ----------------------------------------------------------------------------------
    "On this page the slider steps through frames drawn when the book was built. Open the "
    "chapter in Colab or Binder (rocket button at the top of the page), or download it as a "
    "notebook, to run the live explorer, {code}, and the training runs themselves.": (
        "本页的滑块在构建本书时绘制的各帧之间切换。要运行实时的交互探索图 {code} 以及训练"
        "本身，请在 Colab 或 Binder 中打开本章（页面顶部的火箭按钮），或将本章下载为笔记本。"
    ),
    "training loss\n({n}-step mean)": "训练损失\n（{n} 步平均）",
    "input to ReLU": "ReLU 的输入",
    "spread of the batch mean": "批量均值的离散程度",
    "spread of the batch variance": "批量方差的离散程度",
    "sd over batches\n(units of σ, σ²)": "各批量间的标准差\n（单位：σ、σ²）",
    "loss range along the step": "沿梯度步的损失变化范围",
    r"smoothness $\ell$": "平滑性 ℓ",
    "training step of the checkpoint": "检查点的训练步",
    "Learning rate {lr}: final test accuracy ": "学习率 {lr}：最终测试准确率 ",
    "No run diverged at this rate.": "在这个学习率下没有运行发散。",
    " and ": "和",
    "Diverged (loss infinite) in a seed: {runs}; × marks where.": (
        "在某个随机种子中发散（损失为无穷大）：{runs}；× 标出发散之处。"
    ),
    "Training at one learning rate": "在单一学习率下训练",
    "Training at one learning rate (learning rate on the slider)": (
        "在单一学习率下训练（用滑块选择学习率）"
    ),
    # ----------------------------------------------------------------------------------
    # after_figures.py: chapters 7 and 8
    # ----------------------------------------------------------------------------------
    "eval mode, all test images": "评估模式，全部测试图像",
    "training mode: {batch}": "训练模式：{batch}",
    "BN output": "BN 输出",
    "conv output $z$": "卷积输出 z",
    "column": "列",
    "row": "行",
    "mean |folded − exact|": "平均 |折叠 − 精确|",
    "clean": "原始",
    "shifted": "偏移后",
    "after AdaBN": "AdaBN 之后",
    r"mean of the data $\mu$ ($\sigma = 1$)": "数据的均值 μ（σ = 1）",
    "relative error of the variance": "方差的相对误差",
    "seed {seed}": "随机种子 {seed}",
    "images per device n": "每个设备的图像数 n",
    "RMS(per device − whole)": "RMS(逐设备 − 整个批量)",
    # ----------------------------------------------------------------------------------
    # modern_figures.py: chapter 8a, batch norm in modern networks
    # ----------------------------------------------------------------------------------
    "block index l (input of block l; the last: the output)": (
        "块序号 l（块 l 的输入；最后一点为最后一个块的输出）"
    ),
    "variance of the\nresidual stream": "残差流的\n方差",
    "training loss,\nlast 20 steps": "训练损失，\n最后 20 步",
    "{depth} residual blocks: final loss (mean of the seeds) at rates {rates}: "
    "{first} {first_losses}; {second} {second_losses}.": (
        "{depth} 个残差块：学习率 {rates} 下的最终损失（随机种子均值）："
        "{first} 为 {first_losses}；{second} 为 {second_losses}。"
    ),
    "{second} ends lower than {first} at {lower} of the {n} rates.": (
        "{second} 的最终损失低于 {first} 的学习率：{lower} 个（共 {n} 个）。"
    ),
    "Zero γ at several depths (number of residual blocks on the slider)": (
        "不同深度下的零 γ（用滑块选择残差块的个数）"
    ),
    "Zero γ at several depths": "不同深度下的零 γ",
    "blocks": "块数",
    "test sequences\nsorted exactly (%)": "完全正确排序的\n测试序列（%）",
    "predicted (before)": "预测值（暂退层在前）",
    "dropout probability p": "暂退概率 p",
    "running var ÷ eval-mode var": "运行方差 ÷ 评估模式方差",
    "effective step η/‖w‖²": "有效步长 η/‖w‖²",
    # ----------------------------------------------------------------------------------
    # Texts the chapters pass to the figures above (legends' names, titles)
    # ----------------------------------------------------------------------------------
    # the normalizations (chapters 6, 8, appendix_small_batch)
    "batch": "批量归一化",
    "none": "无归一化",
    "group": "组归一化",
    "layer": "层归一化",
    # chapter 6
    "learning rate": "学习率",
    "test accuracy after 150 steps": "150 步后的测试准确率",
    "learning rate 0.03, batch size 32": "学习率 0.03，批量大小 32",
    "factor on the initial weights": "初始权重的缩放因子",
    "test accuracy, learning rate 0.03": "测试准确率，学习率 0.03",
    "block 1": "块 1",
    "block 2": "块 2",
    "block 3": "块 3",
    "independent pixels": "独立像素",
    "digits": "手写数字",
    "digits, gain and offset": "手写数字，带增益和偏移",
    "digits, block 3 input": "手写数字，块 3 的输入",
    "CNN": "CNN",
    "MLP": "MLP",
    # chapter 7
    "eight 0s": "八个 0",
    "eight 1s": "八个 1",
    "contrast × 0.5": "对比度 × 0.5",
    "brightness + 4": "亮度 + 4",
    "noise σ = 4": "噪声 σ = 4",
    "contrast\n× 0.5": "对比度\n× 0.5",
    "brightness\n+ 4": "亮度\n+ 4",
    "noise\nσ = 4": "噪声\nσ = 4",
    # chapter 8
    "one pass": "单遍",
    "two passes": "两遍",
    "Welford": "Welford",
    "Chan pairwise": "Chan 成对合并",
    "torch BatchNorm2d": "torch BatchNorm2d",
    "Keras BatchNormalization": "Keras BatchNormalization",
    "bnlib.batch_stats": "bnlib.batch_stats",
    "synchronized (32 per device)": "同步（每个设备 32 幅）",
    "8 per device": "每个设备 8 幅",
    "2 per device": "每个设备 2 幅",
    # chapter 8a
    "batch norm": "批量归一化",
    "layer norm": "层归一化",
    "batched,\neval mode": "成批，\n评估模式",
    "one at a time,\neval mode": "逐个，\n评估模式",
    "one at a time,\nits own statistics": "逐个，\n用自身统计量",
    "short ones batched,\nbatch statistics": "短序列成批，\n批量统计量",
    "dropout before BN": "暂退层在 BN 之前",
    "dropout after BN": "暂退层在 BN 之后",
    "no dropout": "不使用暂退法",
    "no decay": "无权重衰减",
    "decay on all": "衰减全部参数",
    "decay, not on γ, β": "衰减，γ、β 除外",
    # appendix_small_batch
    "last maps 2×2": "最后特征图 2×2",
    "last maps 1×1": "最后特征图 1×1",
    # ----------------------------------------------------------------------------------
    # Chapter 8b (08b_beyond_batch_norm): beyond_figures.py's own texts, the texts the
    # chapter passes to its figures, and the words it glues into the prose
    # ----------------------------------------------------------------------------------
    "residual block": "残差块",
    "at initialisation": "初始化时",
    "channel": "通道",
    "batch renorm": "批量重归一化",
    "group norm": "组归一化",
    "no norm": "无归一化",
    "SkipInit": "SkipInit",
    "test accuracy": "测试准确率",
    "training mode = eval mode": "训练模式 = 评估模式",
    "% of test images": "测试图像占比（%）",
    "training loss": "训练损失",
    "cross-entropy": "交叉熵",
    "N = 256,\nghosts of 32": "N = 256，\n幽灵批量 32",
    "lr = 0.03": "学习率 0.03",
    "lr = 0.1": "学习率 0.1",
    "variance of the stream": "残差流的方差",
    "before: correlation": "之前：相关系数",
    "after batch norm:\ncovariance": "批量归一化之后：\n协方差",
    "after whitening:\ncovariance": "白化之后：\n协方差",
    "correlation / covariance": "相关系数 / 协方差",
    "{lo} and {hi}": "{lo} 和 {hi}",
}
