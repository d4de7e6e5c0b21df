// Usage: node run.js <model.onnx> <inputs.json> <outputs.json>
// inputs.json: { "<name>": { "type": "float32"|"int64", "dims": [..], "data": [..] }, ... }
// Writes every output in the same form. Exits 1 with one line on stderr when anything fails.
const fs = require('fs');
const ort = require('onnxruntime-node');

(async () => {
  const [model, inputsPath, outputsPath] = process.argv.slice(2);
  const spec = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));
  const feeds = {};
  for (const [name, t] of Object.entries(spec)) {
    const data = t.type === 'int64' ? BigInt64Array.from(t.data.map(BigInt)) : Float32Array.from(t.data);
    feeds[name] = new ort.Tensor(t.type, data, t.dims);
  }
  const session = await ort.InferenceSession.create(model);
  const results = await session.run(feeds);
  const out = {};
  for (const [name, t] of Object.entries(results)) {
    out[name] = { type: t.type, dims: t.dims, data: Array.from(t.data, v => typeof v === 'bigint' ? Number(v) : v) };
  }
  fs.writeFileSync(outputsPath, JSON.stringify(out));
})().catch(e => { console.error(`onnxruntime-node failed: ${e.message}`); process.exit(1); });
