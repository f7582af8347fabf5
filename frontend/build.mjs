// Bundles the web app into dist/: index.html, static/app.js, static/app.css and Leaflet's images.
// The API serves dist/ at / and /static (service/api/routes/webapp.py); nothing comes from a CDN.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";

const out = new URL("./dist/", import.meta.url);
await rm(out, { recursive: true, force: true });
await mkdir(new URL("static/", out), { recursive: true });
await build({
  entryPoints: { app: "src/main.js" },
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: true,
  outdir: "dist/static",
  assetNames: "[name]-[hash]",
  loader: { ".png": "file", ".svg": "file" },
  logLevel: "warning",
});
await copyFile(new URL("./index.html", import.meta.url), new URL("index.html", out));
console.log("web app built in frontend/dist");
