#!/usr/bin/env node
// A Node.js client of FaceCraft's gRPC service: the engine-side view of the API from a
// language other than Python. It loads the same proto/facecraft/v1/facecraft.proto at run time
// (@grpc/proto-loader), so nothing is generated or copied.
//
//   npm install                       # in examples/node
//   node client.js PHOTO [PHOTO ...] [--server 127.0.0.1:50051] [--out DIR] [--token T]
//                  [--texture-size 1024] [--json]
//
// For each photo it calls Reconstruct (largest face, PNG texture), writes DIR/NAME.obj (the
// mesh with UVs, metres, the proto's right-handed frame), DIR/NAME.mtl and DIR/NAME_texture.png, and
// prints a summary. --json prints one JSON document instead (used by tests/test_grpc_examples.py).
// Then it calls ReconstructBatch with all photos and reports each streamed item's status.
// The token defaults to $FACECRAFT_TOKEN. Conventions: see the proto's header comment.

'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const PROTO_FILE = path.join(PROTO_ROOT, 'facecraft', 'v1', 'facecraft.proto');

function parseArgs(argv) {
  const args = { photos: [], server: '127.0.0.1:50051', out: 'out', token: process.env.FACECRAFT_TOKEN || '',
                 textureSize: 1024, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--server') args.server = argv[++i];
    else if (a === '--out') args.out = argv[++i];
    else if (a === '--token') args.token = argv[++i];
    else if (a === '--texture-size') args.textureSize = parseInt(argv[++i], 10);
    else if (a === '--json') args.json = true;
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else args.photos.push(a);
  }
  if (!args.photos.length) throw new Error('usage: node client.js PHOTO [...] [--server HOST:PORT] [--out DIR]');
  return args;
}

function loadService() {
  const def = protoLoader.loadSync(PROTO_FILE, {
    keepCase: true,      // field names as in the .proto (snake_case)
    longs: Number,       // uint64 limits as numbers
    enums: String,       // enum values by name
    defaults: true,      // absent scalars as their defaults
    includeDirs: [PROTO_ROOT],
  });
  return grpc.loadPackageDefinition(def).facecraft.v1;
}

// Call metadata: the bearer token (when the server wants one) and our own request id.
function metadata(token, requestId) {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  if (requestId) md.set('x-request-id', requestId);
  return md;
}

function deadline(seconds) {
  return new Date(Date.now() + seconds * 1000);
}

function unary(client, method, request, md, seconds) {
  return new Promise((resolve, reject) => {
    client[method](request, md, { deadline: deadline(seconds) }, (err, resp) => {
      if (err) reject(err); else resolve(resp);
    });
  });
}

// OBJ with UVs: positions per vertex, UVs per UV index, faces "v/vt" (1-based), as stored:
// right-handed, metres, counter-clockwise triangles, UV origin bottom-left (OBJ's own rules).
function writeObj(file, mesh, mtlName) {
  const lines = [`mtllib ${mtlName}.mtl`, 'usemtl face'];
  const v = mesh.vertices, uv = mesh.uvs, t = mesh.triangles, ut = mesh.uv_triangles;
  for (let i = 0; i < v.length; i += 3) lines.push(`v ${v[i]} ${v[i + 1]} ${v[i + 2]}`);
  for (let i = 0; i < uv.length; i += 2) lines.push(`vt ${uv[i]} ${uv[i + 1]}`);
  for (let i = 0; i < t.length; i += 3) {
    lines.push(`f ${t[i] + 1}/${ut[i] + 1} ${t[i + 1] + 1}/${ut[i + 1] + 1} ${t[i + 2] + 1}/${ut[i + 2] + 1}`);
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const v1 = loadService();
  const client = new v1.FaceCraft(args.server, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  fs.mkdirSync(args.out, { recursive: true });
  const summary = { model: null, faces: [], batch: [] };

  const info = await unary(client, 'GetModelInfo', { include_topology: false }, metadata(args.token), 10);
  summary.model = {
    package: info.package.name, vertices: info.face_model.num_vertices,
    triangles: info.face_model.num_triangles, layout: info.coefficient_layout.map((b) => [b.name, b.size]),
    capabilities: info.capabilities, max_message_bytes: info.limits.max_message_bytes,
  };

  for (const photo of args.photos) {
    const name = path.basename(photo, path.extname(photo));
    const req = { photo: fs.readFileSync(photo), source: path.basename(photo),
                  options: { faces: 'FACE_SELECTION_LARGEST', texture: true, texture_size: args.textureSize } };
    try {
      const resp = await unary(client, 'Reconstruct', req, metadata(args.token, `node-${name}`), 120);
      const face = resp.faces[0];
      writeObj(path.join(args.out, `${name}.obj`), face.mesh, name);
      fs.writeFileSync(path.join(args.out, `${name}.mtl`), `newmtl face\nKd 1 1 1\nmap_Kd ${name}_texture.png\n`);
      fs.writeFileSync(path.join(args.out, `${name}_texture.png`), face.texture.png);
      summary.faces.push({
        photo: path.basename(photo), request_id: resp.request_id, code: 'OK',
        width: resp.photo.width, height: resp.photo.height,
        score: face.detection.score, box: [face.detection.x0, face.detection.y0, face.detection.x1, face.detection.y1],
        num_vertices: face.mesh.num_vertices, vertices: face.mesh.vertices.length / 3,
        triangles: face.mesh.triangles.length / 3, landmarks: face.landmarks.length / 2,
        identity0: face.coefficients.identity[0], texture_png_bytes: face.texture.png.length,
        texture_size: face.texture.size, albedo_source: face.albedo_source,
      });
    } catch (err) {
      summary.faces.push({ photo: path.basename(photo), code: grpc.status[err.code], message: err.details });
    }
  }

  // The server-streaming batch: one item per photo, in order, each with its own status.
  await new Promise((resolve, reject) => {
    const photos = args.photos.map((p) => ({ data: fs.readFileSync(p), id: path.basename(p) }));
    const call = client.ReconstructBatch({ photos, options: { omit_topology: true } },
                                         metadata(args.token), { deadline: deadline(300) });
    call.on('data', (item) => summary.batch.push({
      index: item.index, id: item.id, code: item.status ? item.status.code : 0,
      message: item.status ? item.status.message : '', faces: item.result ? item.result.faces.length : 0,
    }));
    call.on('error', reject);
    call.on('end', resolve);
  });
  client.close();

  if (args.json) {
    process.stdout.write(JSON.stringify(summary) + '\n');
  } else {
    console.log(`${summary.model.package}: ${summary.model.vertices} vertices, ${summary.model.triangles} triangles`);
    for (const f of summary.faces) {
      console.log(f.code === 'OK'
        ? `${f.photo}: score ${f.score.toFixed(3)}, ${f.vertices} vertices, texture ${f.texture_size}px -> ${args.out}`
        : `${f.photo}: ${f.code}: ${f.message}`);
    }
    for (const it of summary.batch) console.log(`batch item ${it.index} (${it.id}): code ${it.code} ${it.message}`);
  }
  return summary.faces.every((f) => f.code === 'OK') ? 0 : 1;
}

main().then((code) => process.exit(code), (err) => {
  console.error(`error: ${err.details || err.message}`);
  process.exit(2);
});
