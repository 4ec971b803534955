// The label tables: every language has every English label, with the same placeholders.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LABELS, language, translator } from "../i18n.js";

const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test("Simplified Chinese has every label, with the same placeholders", () => {
  for (const [key, english] of Object.entries(LABELS.en)) {
    const chinese = LABELS["zh-CN"][key];
    assert.equal(typeof chinese, "string", `missing zh-CN label ${key}`);
    assert.deepEqual(placeholders(chinese), placeholders(english), key);
  }
  assert.deepEqual(Object.keys(LABELS["zh-CN"]).sort(), Object.keys(LABELS.en).sort());
});

test("the standard Chinese terms are used", () => {
  const all = Object.values(LABELS["zh-CN"]).join(" ");
  for (const term of ["批量归一化", "运行均值", "运行方差", "动量", "训练模式", "评估模式", "方差", "均值", "输出"]) {
    assert.ok(all.includes(term), term);
  }
});

test("the page's lang attribute picks the table; templates are filled in", () => {
  assert.equal(language("zh_CN"), "zh-CN");
  assert.equal(language("zh-CN"), "zh-CN");
  assert.equal(language("en"), "en");
  assert.equal(language(""), "en");
  assert.equal(translator("en")("image", { n: 1 }), "image 1");
  assert.equal(translator("zh-CN")("image", { n: 1 }), "图像 1");
  assert.throws(() => translator("en")("no such label"), /no label/);
});
