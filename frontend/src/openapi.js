// What this service's API accepts, read from its own /openapi.json: the page offers a field
// (focal length, a star-frame image) only when the service it talks to takes it.

function resolve(spec, schema) {
  let current = schema || {};
  for (let depth = 0; current.$ref && depth < 8; depth += 1) {
    current = current.$ref.split("/").slice(1).reduce((node, part) => (node ? node[part] : undefined), spec) || {};
  }
  return current;
}

// Property names of the multipart form body of POST `path` (empty when none).
export function formFields(spec, path) {
  const operation = spec && spec.paths && spec.paths[path] && spec.paths[path].post;
  const content = operation && operation.requestBody && operation.requestBody.content;
  const form = content && (content["multipart/form-data"] || content["application/x-www-form-urlencoded"]);
  if (!form) return [];
  const schema = resolve(spec, form.schema);
  const parts = [schema, ...(schema.allOf || []).map((s) => resolve(spec, s))];
  return parts.flatMap((s) => Object.keys(s.properties || {}));
}

// The first POST path under `prefix` that takes a multipart file (e.g. a star-frame image).
export function multipartPath(spec, prefix) {
  for (const [path, item] of Object.entries((spec && spec.paths) || {})) {
    if (!path.startsWith(prefix) || !item.post) continue;
    const content = item.post.requestBody && item.post.requestBody.content;
    if (content && content["multipart/form-data"]) return path;
  }
  return null;
}

export function jsonExample(spec, path) {
  const operation = spec && spec.paths && spec.paths[path] && spec.paths[path].post;
  const content = operation && operation.requestBody && operation.requestBody.content;
  const body = content && content["application/json"];
  if (!body) return null;
  if (body.example) return body.example;
  const schema = resolve(spec, body.schema);
  return schema.example || null;
}
