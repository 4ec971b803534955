/**
 * The words on the playground and the explorers, in the page's language (`<html lang>`):
 * English, and Simplified Chinese for the Chinese edition (terms as Chinese deep-learning
 * texts use them: 批量归一化, 运行均值, 运行方差, 动量, 训练模式, 评估模式, …).
 * Code names (running_mean, bn.train()) stay as they are, as in the book's code.
 *
 * A label is a template: `{name}` is replaced by the value given for it.
 *
 * @module i18n
 */

export const LABELS = {
  en: {
    // the playground
    playground: "Batch norm playground: BatchNorm2d on a tensor you edit",
    shape: "Shape (N, C, H, W)",
    N: "images N",
    C: "channels C",
    H: "height H",
    W: "width W",
    input: "Input x: type a number in any cell",
    image: "image {n}",
    channel: "channel {c}",
    cell: "x, image {n}, channel {c}, row {h}, column {w}",
    outputCell: "y, image {n}, channel {c}, row {h}, column {w}",
    randomise: "Randomise",
    seed: "seed",
    blogTensor: "The blog's tensor",
    settings: "Settings",
    eps: "ε (eps)",
    momentum: "momentum",
    cumulative: "None (cumulative average)",
    gamma: "γ (weight), channel {c}",
    beta: "β (bias), channel {c}",
    gammaShort: "γ",
    betaShort: "β",
    mode: "mode",
    training: "training mode, bn.train()",
    evaluation: "evaluation mode, bn.eval()",
    anotherBatch: "Another batch",
    resetRunning: "Reset running statistics",
    pooled: "Each channel pools its m = N·H·W = {m} values, across images (separated by |) and pixels:",
    statsCaption: "Statistics of each channel of this batch, and the running statistics",
    colChannel: "channel",
    colMean: "mean μ",
    colBiased: "biased variance σ² (÷ m)",
    colUnbiased: "unbiased variance s² (÷ (m − 1))",
    colRunningMean: "running_mean",
    colRunningVar: "running_var",
    runningNote:
      "running_mean and running_var after this batch (batches seen: {count}, momentum {p}); " +
      "a fresh module starts from 0 and 1",
    runningNoteEval:
      "evaluation mode normalizes with running_mean and running_var (batches seen: {count}) " +
      "and leaves them unchanged",
    output: "Output y = (x − μ)/√(σ² + ε)·γ + β",
    outputEval: "Output y = (x − running_mean)/√(running_var + ε)·γ + β",
    summary: "Channel {c}: mean {mean}, biased variance {var}, unbiased variance {unbiased}.",
    summaryY: "Output shown for {count} values.",
    notNumber: "“{text}” is not a number: type a number such as -1.5 or 2e-3",
    // the explorers
    value: "value",
    epsTitle: "ε under the square root",
    epsSlider: "ε, on a log scale from 1e-10 to 1",
    epsCaption: "ε = {eps}: output std of the four channels, top to bottom: {stds}",
    epsAxis: "normalized output of each of the 16 values of the channel",
    epsRow: "σ² = {v}",
    epsFigure: "The 16 outputs of each of four channels of variance 1, 1e-2, 1e-4 and 1e-6 at ε = {eps}",
    epsFarBelow:
      "ε = {eps} is far below every channel's variance: each channel is scaled to " +
      "standard deviation 1, even the nearly constant one (σ² = 1e-6), whose tiny noise " +
      "now looks as large as real signal.",
    epsLarge:
      "ε = {eps} is as large as the variances themselves: it no longer just guards the " +
      "division, it shrinks every output (std √(σ²/(σ² + ε)) < 1), so batch norm stops " +
      "normalizing.",
    momentumTitle: "Momentum on a drifting stream",
    momentumSlider: "momentum, from 0 to 1",
    momentumCaption:
      "momentum = {p}: in the grey window the running mean lags behind the population " +
      "mean by {lag} on average, and its noise (std) is {noise}",
    momentumNone: "momentum = None",
    batchMeans: "each batch's mean",
    populationMean: "population mean",
    runningMean: "running_mean",
    step: "step (batches seen)",
    meanAxis: "mean",
    errorAxis: "running_mean − population mean",
    window: "where lag and noise are measured",
    momentumFigure:
      "Left: the running mean after each of {steps} batches of a stream whose mean climbs " +
      "from 0 to 3, at momentum {p}. Right: its error against the population mean.",
    momentumZero:
      "momentum = 0: the running mean never moves from its start, 0; evaluation mode " +
      "would normalize with that, whatever the data do.",
    momentumOne:
      "momentum = 1: the running mean is just the last batch's mean; nothing is averaged, " +
      "so evaluation mode inherits one batch's noise.",
    batchTitle: "Batch size and noisy batch statistics",
    batchSlider: "batch size, from 1 to {max}",
    batchCaption:
      "batch size {n}: batch means spread with std {sd} (σ/√N = {theory}), the same " +
      "input's training output with std {osd}",
    batchMean: "batch mean",
    batchVar: "batch variance (biased)",
    batchOutput: "training output of μ + σ",
    fraction: "fraction of {trials} batches",
    populationMeanIs: "population mean {v}",
    populationVarIs: "population σ² {v}",
    evalOutputIs: "eval output {v}",
    batchFigure:
      "Histograms over {trials} batches of size {n}: the batch mean, the batch variance, " +
      "and the training-mode output of the input μ + σ.",
    batchOne:
      "batch size 1: bnlib, like PyTorch, refuses to normalize in training mode ({error}). " +
      "A batch of one 1×1 feature map has a single value per channel, so its variance is 0 " +
      "and its output would always be 0.",
    batchTwo:
      "batch size 2: two values normalized by their own mean and variance always become " +
      "−1 and +1, whatever they were: the output says only which one is larger.",
    batchThree:
      "batch size 3: no output can pass ±√2 ≈ 1.41 (the bound √(m − 1)), and the probe's " +
      "outputs pile up just below it whenever the other two values are close.",
    batchFour:
      "batch size 4: batch statistics scatter widely, so the same input gives very " +
      "different training-mode outputs from batch to batch.",
  },
  "zh-CN": {
    playground: "批量归一化演练场：在可编辑的张量上运行 BatchNorm2d",
    shape: "形状 (N, C, H, W)",
    N: "图像数 N",
    C: "通道数 C",
    H: "高 H",
    W: "宽 W",
    input: "输入 x：可在任一单元格中输入数值",
    image: "图像 {n}",
    channel: "通道 {c}",
    cell: "x，图像 {n}，通道 {c}，第 {h} 行，第 {w} 列",
    outputCell: "y，图像 {n}，通道 {c}，第 {h} 行，第 {w} 列",
    randomise: "随机生成",
    seed: "随机种子",
    blogTensor: "博客中的张量",
    settings: "设置",
    eps: "ε (eps)",
    momentum: "动量",
    cumulative: "None（累积平均）",
    gamma: "γ（权重），通道 {c}",
    beta: "β（偏置），通道 {c}",
    gammaShort: "γ",
    betaShort: "β",
    mode: "模式",
    training: "训练模式，bn.train()",
    evaluation: "评估模式，bn.eval()",
    anotherBatch: "再来一个批量",
    resetRunning: "重置运行统计量",
    pooled: "每个通道汇集其 m = N·H·W = {m} 个值，跨越图像（以 | 分隔）与像素：",
    statsCaption: "本批量各通道的统计量，以及运行统计量",
    colChannel: "通道",
    colMean: "均值 μ",
    colBiased: "有偏方差 σ²（÷ m）",
    colUnbiased: "无偏方差 s²（÷ (m − 1)）",
    colRunningMean: "running_mean（运行均值）",
    colRunningVar: "running_var（运行方差）",
    runningNote:
      "本批量之后的 running_mean 与 running_var（已处理 {count} 个批量，动量 {p}）；" +
      "新建的模块从 0 和 1 开始",
    runningNoteEval:
      "评估模式用 running_mean 与 running_var 归一化（已处理 {count} 个批量），且不改变它们",
    output: "输出 y = (x − μ)/√(σ² + ε)·γ + β",
    outputEval: "输出 y = (x − running_mean)/√(running_var + ε)·γ + β",
    summary: "通道 {c}：均值 {mean}，有偏方差 {var}，无偏方差 {unbiased}。",
    summaryY: "已显示 {count} 个输出值。",
    notNumber: "“{text}”不是数值：请输入如 -1.5 或 2e-3 的数",
    value: "数值",
    epsTitle: "平方根下的 ε",
    epsSlider: "ε，对数刻度，从 1e-10 到 1",
    epsCaption: "ε = {eps}：四个通道（自上而下）输出的标准差：{stds}",
    epsAxis: "该通道 16 个值各自归一化后的输出",
    epsRow: "σ² = {v}",
    epsFigure: "方差为 1、1e-2、1e-4 和 1e-6 的四个通道在 ε = {eps} 时各自的 16 个输出",
    epsFarBelow:
      "ε = {eps} 远小于每个通道的方差：每个通道都被缩放到标准差 1，连几乎恒定的通道" +
      "（σ² = 1e-6）也不例外，其微小的噪声看起来和真实信号一样大。",
    epsLarge:
      "ε = {eps} 与方差本身一样大：它不再只是防止除以零，而会缩小每个输出" +
      "（标准差 √(σ²/(σ² + ε)) < 1），批量归一化不再起归一化作用。",
    momentumTitle: "漂移数据流上的动量",
    momentumSlider: "动量，从 0 到 1",
    momentumCaption:
      "动量 = {p}：在灰色窗口中，运行均值平均落后总体均值 {lag}，其噪声（标准差）为 {noise}",
    momentumNone: "动量 = None",
    batchMeans: "每个批量的均值",
    populationMean: "总体均值",
    runningMean: "running_mean（运行均值）",
    step: "步数（已处理的批量数）",
    meanAxis: "均值",
    errorAxis: "running_mean − 总体均值",
    window: "测量滞后与噪声的区间",
    momentumFigure:
      "左：均值从 0 升到 3 的数据流中，{steps} 个批量各自之后的运行均值，动量为 {p}。" +
      "右：它相对总体均值的误差。",
    momentumZero: "动量 = 0：运行均值始终停在初值 0；评估模式将用它归一化，无论数据如何。",
    momentumOne: "动量 = 1：运行均值就是最后一个批量的均值；没有任何平均，评估模式继承了单个批量的噪声。",
    batchTitle: "批量大小与有噪声的批量统计量",
    batchSlider: "批量大小，从 1 到 {max}",
    batchCaption:
      "批量大小 {n}：批量均值的标准差为 {sd}（σ/√N = {theory}），同一输入在训练模式下" +
      "输出的标准差为 {osd}",
    batchMean: "批量均值",
    batchVar: "批量方差（有偏）",
    batchOutput: "μ + σ 的训练模式输出",
    fraction: "{trials} 个批量中的比例",
    populationMeanIs: "总体均值 {v}",
    populationVarIs: "总体 σ² {v}",
    evalOutputIs: "评估模式输出 {v}",
    batchFigure: "{trials} 个大小为 {n} 的批量的直方图：批量均值、批量方差，以及输入 μ + σ 的训练模式输出。",
    batchOne:
      "批量大小 1：bnlib 与 PyTorch 一样，在训练模式下拒绝归一化（{error}）。" +
      "一个 1×1 特征图的批量每个通道只有一个值，方差为 0，输出将恒为 0。",
    batchTwo: "批量大小 2：两个值用它们自己的均值和方差归一化后总是变成 −1 和 +1：输出只说明哪个更大。",
    batchThree:
      "批量大小 3：任何输出都不能超过 ±√2 ≈ 1.41（上界 √(m − 1)），当另外两个值接近时，" +
      "探针的输出会堆积在该上界之下。",
    batchFour: "批量大小 4：批量统计量波动很大，同一输入在不同批量中的训练模式输出差别很大。",
  },
};

/** The language of the labels for a `lang` attribute ("en", "zh-CN", "zh_CN", "zh"…). */
export function language(lang) {
  return /^zh/i.test(lang || "") ? "zh-CN" : "en";
}

/**
 * A translator for `lang`: `t("key", {name: value})` fills in the template.
 * A key missing from the language falls back to English.
 */
export function translator(lang) {
  const table = LABELS[language(lang)];
  return (key, values = {}) => {
    const template = table[key] ?? LABELS.en[key];
    if (template === undefined) throw new Error(`no label "${key}"`);
    return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? `{${name}}`));
  };
}
