#!/usr/bin/env node
// Schema check of Kubernetes objects with kubernetes-models 4.x.
//
//   node check-k8s.js < objects.json      (a JSON array of objects)
//
// For each object: the model of its apiVersion and kind validates it (types,
// required fields, enums, formats), and every field it has must be one the
// schema knows. kubernetes-models' validators accept unknown fields, so the
// object is handed to the validator through a Proxy that records every
// member the validator reads: a field it never read is one the schema does
// not have (maps such as labels or ConfigMap data are read key by key, so
// their keys count as known). Prints a JSON report, one entry per object:
// {kind, name, errors: [...], unknown: [JSON Pointer, ...]}; exits 1 when
// any object has an error or an unknown field, 2 on bad input.
"use strict";

const fs = require("fs");
const path = require("path");

// "apps/v1" -> "apps/v1", "v1" -> "v1", "networking.k8s.io/v1" -> same:
// kubernetes-models lays its classes out as <group>/<version>/<Kind>.
function modelFor(apiVersion, kind) {
  if (!/^[a-z0-9.\/-]+$/.test(apiVersion) || !/^[A-Za-z0-9]+$/.test(kind)) {
    return null;
  }
  try {
    const mod = require(`kubernetes-models/${apiVersion}/${kind}`);
    return mod[kind] || null;
  } catch (e) {
    return null;
  }
}

function tracked(value, pointer, seen) {
  if (value === null || typeof value !== "object") {
    return value;
  }
  return new Proxy(value, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof key === "string" && Object.prototype.hasOwnProperty.call(target, key)) {
        const p = `${pointer}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
        seen.add(p);
        return tracked(v, p, seen);
      }
      return v;
    },
  });
}

function members(value, pointer, out) {
  if (value !== null && typeof value === "object") {
    for (const key of Object.keys(value)) {
      const p = `${pointer}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
      out.push(p);
      members(value[key], p, out);
    }
  }
  return out;
}

function check(obj) {
  const entry = {
    kind: obj && obj.kind,
    name: obj && obj.metadata && obj.metadata.name,
    errors: [],
    unknown: [],
  };
  const Model = obj && modelFor(String(obj.apiVersion), String(obj.kind));
  if (!Model) {
    entry.errors.push(`no schema for apiVersion ${obj && obj.apiVersion}, kind ${obj && obj.kind}`);
    return entry;
  }
  const seen = new Set();
  try {
    // The model's validate() checks `this`: give it the tracked object.
    Model.prototype.validate.call(tracked(obj, "", seen));
  } catch (e) {
    entry.errors.push(String(e && e.message ? e.message : e));
  }
  entry.unknown = members(obj, "", []).filter((p) => !seen.has(p));
  return entry;
}

function main() {
  let objects;
  try {
    objects = JSON.parse(fs.readFileSync(0, "utf8"));
  } catch (e) {
    process.stderr.write(`check-k8s: input is not JSON: ${e.message}\n`);
    process.exit(2);
  }
  if (!Array.isArray(objects) || objects.length === 0) {
    process.stderr.write("check-k8s: expected a non-empty JSON array of objects\n");
    process.exit(2);
  }
  const report = objects.map(check);
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  process.exit(report.some((r) => r.errors.length || r.unknown.length) ? 1 : 0);
}

module.paths.unshift(path.join(__dirname, "node_modules"));
main();
