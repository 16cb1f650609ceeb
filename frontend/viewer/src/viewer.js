// pdm-records 3D preview: a design iteration coloured by wall thickness.
//
// Bundled with three.js (MIT) into one ES module by scripts/build-viewer; the page loads it
// with <script type="module" src=...> (the CSP allows no inline script). Every element with
// [data-pdm-viewer] gets a viewer; it reads the legend (JSON) and the compact GLB from the URLs
// in its data attributes, and reports its state in data-state:
//   loading -> rendered (the first frame is on screen) | no-webgl | error
import {
  Box3,
  CanvasTexture,
  Color,
  DirectionalLight,
  HemisphereLight,
  Object3D,
  PerspectiveCamera,
  Scene,
  SRGBColorSpace,
  Sprite,
  SpriteMaterial,
  Vector3,
  WebGLRenderer,
} from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";

const SEVERITY_COLORS = { fail: "#111827", warning: "#9a6700", info: "#0b6e75" };
const SEVERITY_TEXT = { fail: "failed check", warning: "defect", info: "for information" };
// The model is seen from the file's -X, -Y, +Z side first (glTF: +Y up, so (x, z, -y)).
const VIEW_DIRECTION = new Vector3(-0.9, 0.75, 1.1).normalize();

function webgl2Available() {
  try {
    const canvas = document.createElement("canvas");
    return Boolean(window.WebGL2RenderingContext && canvas.getContext("webgl2"));
  } catch {
    return false;
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function fmt(value, digits = 3) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return Number(value.toPrecision(digits)).toString();
}

function percent(fraction) {
  if (!fraction) return "0 %";
  const p = fraction * 100;
  return `${p < 0.1 ? "< 0.1" : fmt(p, 2)} %`;
}

async function fetchOk(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) {
    const reasons = {
      404: "this design iteration has no preview (it has not been verified yet)",
      409: "the stored design could not be turned into a preview",
      503: "the server cannot read the design right now; try again in a minute",
    };
    throw new Error(reasons[response.status] || `the server answered ${response.status}`);
  }
  return response;
}

function renderLegend(root, legend) {
  const box = root.querySelector("[data-viewer-legend]");
  if (!box) return;
  box.replaceChildren();
  const scale = legend.scale;
  const summary = el("p", { className: "viewer-summary" });
  const report = legend.report || {};
  const th = report.thickness || {};
  if (scale.envelope_min !== null && scale.envelope_min !== undefined) {
    summary.append(el("strong", { text: `Envelope minimum: ${fmt(scale.envelope_min)} mm` }));
  } else {
    summary.append(el("strong", { text: "The envelope sets no minimum wall thickness" }));
  }
  if (th.min !== null && th.min !== undefined) {
    summary.append(el("br"), `Thinnest sampled wall (report): ${fmt(th.min)} mm`);
  }
  box.append(summary);
  const list = el("ul", { className: "viewer-scale", "aria-label": "Colour scale" });
  for (const cls of scale.classes) {
    if (cls.key === "not_measured" && !cls.faces) continue;
    const swatch = el("span", { className: "viewer-swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = cls.color; // CSSOM, allowed by the CSP (no inline style)
    const item = el("li", { className: `viewer-class viewer-class-${cls.key}` }, swatch,
      el("span", { className: "viewer-class-label", text: cls.label }),
      el("span", { className: "viewer-class-share", text: percent(cls.area_fraction) }));
    if (!cls.faces) item.classList.add("viewer-class-empty");
    if (cls.key === "below_min") item.classList.add("viewer-class-warning");
    list.append(item);
  }
  box.append(list);
  box.append(el("p", { className: "muted small-print", text:
    "Share of the surface area per colour. Colours: one ray per face, from its centre into " +
    "the material." }));
}

function renderMarkers(root, legend, onPick) {
  const list = root.querySelector("[data-viewer-markers]");
  if (!list) return;
  list.replaceChildren();
  if (!legend.markers.length) {
    list.append(el("li", { className: "muted", text: "No locations to mark." }));
    return;
  }
  for (const marker of legend.markers) {
    const badge = el("span", { className: `viewer-badge viewer-badge-${marker.severity}`,
      text: String(marker.index), "aria-hidden": "true" });
    const button = el("button", { type: "button", className: "viewer-marker-button",
      title: "Show this location" }, badge,
      el("span", { text: `${marker.label} (${SEVERITY_TEXT[marker.severity] || marker.severity})` }));
    button.addEventListener("click", () => onPick(marker));
    list.append(el("li", { className: `viewer-marker viewer-marker-${marker.severity}` }, button));
  }
}

function markerSprite(marker, size) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 128;
  const ctx = canvas.getContext("2d");
  ctx.beginPath();
  ctx.arc(64, 64, 56, 0, Math.PI * 2);
  ctx.fillStyle = SEVERITY_COLORS[marker.severity] || SEVERITY_COLORS.info;
  ctx.fill();
  ctx.lineWidth = 10;
  ctx.strokeStyle = "#ffffff";
  ctx.stroke();
  ctx.fillStyle = "#ffffff";
  ctx.font = "bold 64px sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(String(marker.index), 64, 68);
  const texture = new CanvasTexture(canvas);
  texture.colorSpace = SRGBColorSpace;
  const sprite = new Sprite(new SpriteMaterial({ map: texture, depthTest: false,
    transparent: true }));
  sprite.renderOrder = 10;
  sprite.scale.set(size, size, size);
  sprite.position.fromArray(marker.position);
  sprite.name = `marker-${marker.index}`;
  return sprite;
}

// Distance along `direction` from `centre` at which every point is in view (with a margin),
// for a camera looking back at the centre.
function fitDistance(points, centre, direction, fovDegrees, aspect) {
  const forward = direction.clone().negate();
  const right = new Vector3().crossVectors(forward, new Vector3(0, 1, 0)).normalize();
  const up = new Vector3().crossVectors(right, forward).normalize();
  const tanV = Math.tan((fovDegrees * Math.PI) / 360);
  const tanH = tanV * aspect;
  const v = new Vector3();
  let distance = 0;
  for (const point of points) {
    v.copy(point).sub(centre);
    const depth = v.dot(forward);
    distance = Math.max(distance, Math.abs(v.dot(right)) / tanH - depth,
      Math.abs(v.dot(up)) / tanV - depth);
  }
  return Math.max(distance * 1.2, 1e-6);
}

// Up to ~20,000 vertex positions of the model in world coordinates (for framing).
function samplePoints(model) {
  model.updateMatrixWorld(true);
  const points = [];
  model.traverse((object) => {
    if (!object.isMesh) return;
    const position = object.geometry.attributes.position;
    const step = Math.max(1, Math.floor(position.count / 20000));
    for (let i = 0; i < position.count; i += step) {
      points.push(new Vector3().fromBufferAttribute(position, i).applyMatrix4(object.matrixWorld));
    }
  });
  return points;
}

function createView(root, gltf, legend) {
  const stage = root.querySelector("[data-viewer-stage]");
  const renderer = new WebGLRenderer({ antialias: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.outputColorSpace = SRGBColorSpace;
  const canvas = renderer.domElement;
  canvas.className = "viewer-canvas";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Design iteration ${legend.iteration ?? ""} in 3D, ` +
    "coloured by wall thickness; drag to turn, scroll to zoom, right-drag to pan");
  canvas.tabIndex = 0;
  stage.prepend(canvas);

  const scene = new Scene();
  scene.background = new Color("#f3f5f7");
  const camera = new PerspectiveCamera(35, 1, 0.0001, 100);
  scene.add(camera);
  // Soft sky light plus a key light above and to the right of the viewer (it turns with the
  // camera), so curvature reads as shading while the colours stay close to the legend's.
  scene.add(new HemisphereLight("#ffffff", "#6b7480", 0.9));
  const key = new DirectionalLight("#ffffff", 2.6);
  key.position.set(-1.0, 1.5, 0.4);
  const target = new Object3D();
  target.position.set(0, 0, -1);
  camera.add(key, target);
  key.target = target;

  const model = gltf.scene;
  scene.add(model);
  const design = model.getObjectByName("design") || model;
  const box = new Box3().setFromObject(model);
  const centre = box.getCenter(new Vector3());
  const radius = Math.max(box.getSize(new Vector3()).length() / 2, 1e-6);
  const points = samplePoints(model);

  // Markers live in the design's own coordinates (mm, the file's axes), like the legend's.
  const b = legend.bounds;
  const diagonalMm = Math.hypot(b.max[0] - b.min[0], b.max[1] - b.min[1], b.max[2] - b.min[2]);
  const markers = new Map();
  for (const marker of legend.markers) {
    const sprite = markerSprite(marker, Math.max(diagonalMm * 0.045, 1e-6));
    design.add(sprite);
    markers.set(marker.index, sprite);
  }

  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = false;
  let distance = radius * 3;
  let moved = false; // once the user turned the model, a resize keeps their view
  controls.addEventListener("start", () => { moved = true; });
  const home = () => {
    distance = fitDistance(points, centre, VIEW_DIRECTION, camera.fov, camera.aspect);
    controls.target.copy(centre);
    camera.position.copy(centre).addScaledVector(VIEW_DIRECTION, distance);
    camera.near = distance / 1000;
    camera.far = distance * 20;
    camera.updateProjectionMatrix();
    controls.minDistance = radius * 0.05;
    controls.maxDistance = distance * 6;
    controls.update();
    moved = false;
  };

  let pending = false;
  let first = true;
  const draw = () => {
    pending = false;
    renderer.render(scene, camera);
    if (first) {
      first = false;
      // One more frame so the image is on screen before anyone reads the state.
      requestAnimationFrame(() => {
        root.dataset.state = "rendered";
        root.dispatchEvent(new CustomEvent("pdm-viewer-rendered", { bubbles: true }));
      });
    }
  };
  const requestDraw = () => {
    if (!pending) {
      pending = true;
      requestAnimationFrame(draw);
    }
  };
  controls.addEventListener("change", requestDraw);

  const resize = () => {
    const width = Math.max(stage.clientWidth, 1);
    const height = Math.max(stage.clientHeight, 1);
    renderer.setSize(width, height, false);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
    if (!moved) home();
    requestDraw();
  };
  new ResizeObserver(resize).observe(stage);
  canvas.addEventListener("webglcontextlost", (event) => {
    event.preventDefault();
    fail(root, "The 3D view lost its graphics context. Reload the page to see it again.");
  });

  const reset = root.querySelector("[data-viewer-reset]");
  if (reset) {
    reset.hidden = false;
    reset.addEventListener("click", () => { home(); requestDraw(); });
  }

  home();
  resize();
  return {
    focus(index) {
      const sprite = markers.get(index);
      if (!sprite) return;
      const where = sprite.getWorldPosition(new Vector3());
      controls.target.copy(where);
      camera.position.copy(where).addScaledVector(
        camera.position.clone().sub(where).normalize(), distance * 0.45);
      controls.update();
      requestDraw();
    },
  };
}

function fail(root, message, state = "error") {
  root.dataset.state = state;
  root.classList.add("viewer-failed");
  const box = root.querySelector("[data-viewer-message]");
  if (box) {
    box.textContent = message;
    box.hidden = false;
    box.setAttribute("role", "alert");
  }
}

async function start(root) {
  root.dataset.state = "loading";
  const message = root.querySelector("[data-viewer-message]");
  if (!webgl2Available()) {
    fail(root, "This browser cannot show the 3D preview: WebGL 2 is unavailable or switched " +
      "off. The verification report above lists every measured value.", "no-webgl");
    return;
  }
  let legend;
  let gltf;
  try {
    legend = await (await fetchOk(root.dataset.legendUrl)).json();
  } catch (error) {
    fail(root, `The 3D preview could not be loaded: ${error.message}.`);
    return;
  }
  renderLegend(root, legend);
  try {
    const buffer = await (await fetchOk(root.dataset.glbUrl)).arrayBuffer();
    gltf = await new GLTFLoader().parseAsync(buffer, "");
  } catch (error) {
    fail(root, `The 3D preview could not be loaded: ${error.message}.`);
    return;
  }
  try {
    const view = createView(root, gltf, legend);
    renderMarkers(root, legend, (marker) => view.focus(marker.index));
  } catch (error) {
    fail(root, `The 3D preview could not be shown: ${error.message}.`);
    return;
  }
  if (message) message.hidden = true;
  const note = root.querySelector("[data-viewer-note]");
  if (note) {
    const faces = legend.simplified
      ? `Simplified from ${legend.source_faces.toLocaleString("en")} to ` +
        `${legend.faces.toLocaleString("en")} faces for the browser.`
      : `${legend.faces.toLocaleString("en")} faces, as verified.`;
    note.textContent = faces + (legend.report && legend.report.intact === false
      ? " Warning: the stored report no longer matches its digest." : "");
  }
}

for (const root of document.querySelectorAll("[data-pdm-viewer]")) {
  start(root);
}
