/* The latent explorer of the HTML book (notebooks/10_explorer.md).
 *
 * It runs the conditional VAE's decoder in the page, in plain JavaScript, from the
 * layers and weights that cvae_lib/explorer.py writes into window.CVAE_EXPLORER
 * (Keras's Conv2DTranspose and Conv2D with their "same"/"valid" padding, leaky ReLU,
 * then a sigmoid for the pixel probabilities), and draws the latent plane: the test
 * codes, the class means, the digit under the pointer, a pinned point, and samples of
 * a chosen class. No library and no network: the page works from file:// as well as
 * from any static server. window.cvaeExplorer exposes the decoder for the tests.
 */
(function () {
  "use strict";

  // ---- the decoder ------------------------------------------------------------

  /** Little-endian float32 in base64 -> Float64Array (the page computes in float64). */
  function floats(base64) {
    const bytes = atob(base64);
    const view = new DataView(new ArrayBuffer(bytes.length));
    for (let i = 0; i < bytes.length; i++) view.setUint8(i, bytes.charCodeAt(i));
    const out = new Float64Array(bytes.length / 4);
    for (let j = 0; j < out.length; j++) out[j] = view.getFloat32(4 * j, true);
    return out;
  }

  /** Output size and leading padding of one spatial axis, as TensorFlow computes them. */
  function axis(kind, padding, size, kernel, stride) {
    if (kind === "conv2d_transpose") {
      const out = padding === "same" ? size * stride : size * stride + Math.max(kernel - stride, 0);
      const total = padding === "same" ? Math.max((size - 1) * stride + kernel - out, 0) : 0;
      return { out: out, pad: Math.floor(total / 2) };
    }
    const out = padding === "same" ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
    const total = padding === "same" ? Math.max((out - 1) * stride + kernel - size, 0) : 0;
    return { out: out, pad: Math.floor(total / 2) };
  }

  /** One exported layer, ready to run on an input of inH x inW x cin (channels last). */
  function prepareLayer(spec, inH, inW, cin) {
    const [kh, kw, a, b] = spec.kernel_shape;
    const transposed = spec.kind === "conv2d_transpose";
    const cout = transposed ? a : b;
    if ((transposed ? b : a) !== cin) throw new Error("explorer: layer shapes do not chain");
    // Both kinds are stored as (kh, kw, cout, cin), so the innermost loop runs over
    // contiguous input channels; Conv2D's kernel is Keras's (kh, kw, cin, cout).
    let kernel = floats(spec.kernel);
    if (!transposed) {
      const k = new Float64Array(kernel.length);
      for (let p = 0; p < kh * kw; p++)
        for (let i = 0; i < cin; i++)
          for (let o = 0; o < cout; o++) k[(p * cout + o) * cin + i] = kernel[(p * cin + i) * cout + o];
      kernel = k;
    }
    const y = axis(spec.kind, spec.padding, inH, kh, spec.strides[0]);
    const x = axis(spec.kind, spec.padding, inW, kw, spec.strides[1]);
    return {
      transposed: transposed, kh: kh, kw: kw, cin: cin, cout: cout, kernel: kernel,
      bias: floats(spec.bias), sy: spec.strides[0], sx: spec.strides[1],
      inH: inH, inW: inW, outH: y.out, outW: x.out, padY: y.pad, padX: x.pad,
      slope: spec.activation === "leaky_relu" ? spec.alpha : 1,
      out: new Float64Array(y.out * x.out * cout),
    };
  }

  /** The sum of a[ai + i] * b[bi + i] for i < n, kept in four partial sums: with one, each
   *  addition waits for the previous one, and the decoder runs at two thirds the speed. */
  function dot(a, ai, b, bi, n) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
    for (; i + 3 < n; i += 4) {
      s0 += a[ai + i] * b[bi + i];
      s1 += a[ai + i + 1] * b[bi + i + 1];
      s2 += a[ai + i + 2] * b[bi + i + 2];
      s3 += a[ai + i + 3] * b[bi + i + 3];
    }
    for (; i < n; i++) s0 += a[ai + i] * b[bi + i];
    return (s0 + s1) + (s2 + s3);
  }

  /** One layer on the input, into L.out (before the activation). Kernel offset (ky, kx)
   *  links input row iy to output row oy by iy = oy * stride + ky - pad in Keras's Conv2D
   *  and by oy = iy * stride + ky - pad in its Conv2DTranspose (columns alike): the loops
   *  run over the side that is multiplied by the stride, and find the other. */
  function runLayer(L, input) {
    const { kh, kw, cin, cout, kernel, out, transposed } = L;
    const [h, w, h2, w2] = transposed ? [L.inH, L.inW, L.outH, L.outW] : [L.outH, L.outW, L.inH, L.inW];
    for (let p = 0; p < out.length; p += cout) out.set(L.bias, p);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let ky = 0; ky < kh; ky++) {
          const y2 = y * L.sy + ky - L.padY;
          if (y2 < 0 || y2 >= h2) continue;
          for (let kx = 0; kx < kw; kx++) {
            const x2 = x * L.sx + kx - L.padX;
            if (x2 < 0 || x2 >= w2) continue;
            const inOff = (transposed ? y * w + x : y2 * w2 + x2) * cin;
            const outOff = (transposed ? y2 * w2 + x2 : y * w + x) * cout;
            let k = (ky * kw + kx) * cout * cin;
            for (let o = 0; o < cout; o++, k += cin) out[outOff + o] += dot(input, inOff, kernel, k, cin);
          }
        }
      }
    }
  }

  /** The decoder of window.CVAE_EXPLORER: decode(z) -> pixel probabilities (row-major). */
  function makeDecoder(data) {
    const latent = data.config.latent_dim;
    let h = 1, w = 1, c = latent; // z is reshaped to a 1 x 1 image with latent_dim channels
    const layers = data.layers.map(function (spec) {
      const L = prepareLayer(spec, h, w, c);
      h = L.outH; w = L.outW; c = L.cout;
      return L;
    });
    const size = data.config.image_shape;
    if (h !== size[0] || w !== size[1] || c !== size[2]) throw new Error("explorer: output is not an image");
    return {
      height: h, width: w,
      decode: function (z) {
        let x = Float64Array.from(z);
        for (const L of layers) {
          runLayer(L, x);
          if (L.slope !== 1) for (let i = 0; i < L.out.length; i++) if (L.out[i] < 0) L.out[i] *= L.slope;
          x = L.out;
        }
        const p = new Float64Array(x.length);
        for (let i = 0; i < x.length; i++) p[i] = 1 / (1 + Math.exp(-x[i]));
        return p;
      },
    };
  }

  // ---- the page -----------------------------------------------------------------

  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]; // matplotlib's C0..C9
  const PLOT = 440; // drawing size of the plane in canvas pixels; CSS may scale it
  const SAMPLES = 16; // a 4 x 4 grid of draws from N(mu_y, I)

  function element(tag, attributes, parent) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (key === "text") node.textContent = value; else node.setAttribute(key, value);
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function paint(canvas, probabilities, width, col, row) {
    const context = canvas.getContext("2d");
    const image = context.createImageData(width, probabilities.length / width);
    for (let i = 0; i < probabilities.length; i++) {
      const grey = Math.round(255 * probabilities[i]); // white ink on black, as in the figures
      image.data.set([grey, grey, grey, 255], 4 * i);
    }
    context.putImageData(image, col || 0, row || 0);
  }

  function gaussian() { // Box-Muller
    return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  }

  function build(root, data) {
    const decoder = makeDecoder(data);
    const means = data.class_means;
    const state = { pointer: null, pinned: means[0].slice(), digit: 0, samples: [], frame: 0 };

    // The plane's extent: every code and mean with a margin, square so circles stay round.
    const xs = data.points.map((p) => p[0]).concat(means.map((m) => m[0]));
    const ys = data.points.map((p) => p[1]).concat(means.map((m) => m[1]));
    const cx = (Math.min(...xs) + Math.max(...xs)) / 2, cy = (Math.min(...ys) + Math.max(...ys)) / 2;
    const half = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)) / 2 + 2.5;
    const toPixel = (z) => [(z[0] - cx + half) / (2 * half) * PLOT, (cy + half - z[1]) / (2 * half) * PLOT];
    const toLatent = (px, py) => [cx - half + px / PLOT * 2 * half, cy + half - py / PLOT * 2 * half];

    root.textContent = "";
    const plotBox = element("div", { class: "cvae-explorer-plot" }, root);
    const plane = element("canvas", {
      width: PLOT, height: PLOT, role: "img",
      "aria-label": "latent plane: move the pointer to decode a point, click to pin it",
    }, plotBox);
    const caption = (text, parent) => element("div", { class: "cvae-explorer-caption", text: text }, parent);
    caption("Move over the plane to decode z; click to pin a point.", plotBox);
    const side = element("div", { class: "cvae-explorer-side" }, root);
    const digit = element("canvas",
      { width: decoder.width, height: decoder.height, class: "cvae-explorer-digit" }, side);
    const readout = element("div", { class: "cvae-explorer-readout", "aria-live": "polite" }, side);
    const picker = element("div",
      { class: "cvae-explorer-classes", role: "group", "aria-label": "class to sample" }, side);
    const buttons = means.map(function (_, c) {
      const button = element("button",
        { type: "button", text: String(c), style: "border-color:" + COLOURS[c % 10] }, picker);
      button.addEventListener("click", () => drawSamples(c));
      return button;
    });
    caption("Samples z ~ N(\u03bc_y, I) of the chosen class:", side);
    const grid = element("canvas",
      { width: 4 * decoder.width, height: 4 * decoder.height, class: "cvae-explorer-samples" }, side);

    // The static layer: test codes, the chosen class's 1- and 2-sigma circles, class means.
    const background = document.createElement("canvas");
    background.width = background.height = PLOT;
    function drawBackground() {
      const g = background.getContext("2d");
      g.fillStyle = "#fff";
      g.fillRect(0, 0, PLOT, PLOT);
      // Grid lines at a round step, labelled along the bottom (z1) and left (z2) edges.
      const step = [1, 2, 5, 10, 20, 50].find((s) => 2 * half / s <= 10) || 100;
      g.strokeStyle = "#eee";
      g.fillStyle = "#999";
      g.font = "10px sans-serif";
      for (let v = Math.ceil((cx - half) / step) * step; v <= cx + half; v += step) {
        const [px] = toPixel([v, 0]);
        g.beginPath(); g.moveTo(px, 0); g.lineTo(px, PLOT); g.stroke();
        g.fillText(String(v), px + 2, PLOT - 3);
      }
      for (let v = Math.ceil((cy - half) / step) * step; v <= cy + half; v += step) {
        const [, py] = toPixel([0, v]);
        g.beginPath(); g.moveTo(0, py); g.lineTo(PLOT, py); g.stroke();
        if (py < PLOT - 14) g.fillText(String(v), 3, py - 2); // clear of the z1 labels
      }
      g.fillText("z₁ →", PLOT - 30, PLOT - 14);
      g.fillText("z₂ ↑", 3, 12);
      g.globalAlpha = 0.5;
      data.points.forEach(function (z, i) {
        const [px, py] = toPixel(z);
        g.fillStyle = COLOURS[data.labels[i] % 10];
        g.fillRect(px - 1.5, py - 1.5, 3, 3);
      });
      g.globalAlpha = 1;
      const [mx, my] = toPixel(means[state.digit]);
      g.strokeStyle = COLOURS[state.digit % 10];
      g.setLineDash([4, 3]);
      for (const radius of [1, 2]) {
        g.beginPath();
        g.arc(mx, my, radius / (2 * half) * PLOT, 0, 2 * Math.PI);
        g.stroke();
      }
      g.setLineDash([]);
      g.font = "bold 12px sans-serif";
      g.textAlign = "center";
      g.textBaseline = "middle";
      means.forEach(function (m, c) {
        const [px, py] = toPixel(m);
        g.beginPath();
        g.arc(px, py, 9, 0, 2 * Math.PI);
        g.fillStyle = "#fff";
        g.fill();
        g.lineWidth = 2;
        g.strokeStyle = COLOURS[c % 10];
        g.stroke();
        g.fillStyle = "#000";
        g.fillText(String(c), px, py + 0.5);
      });
      g.lineWidth = 1;
    }

    function marker(g, z, colour, size) {
      const [px, py] = toPixel(z);
      g.strokeStyle = colour;
      g.beginPath();
      g.moveTo(px - size, py); g.lineTo(px + size, py);
      g.moveTo(px, py - size); g.lineTo(px, py + size);
      g.stroke();
    }

    function render() {
      state.frame = 0;
      const z = state.pointer || state.pinned;
      paint(digit, decoder.decode(z), decoder.width);
      const g = plane.getContext("2d");
      g.drawImage(background, 0, 0);
      state.samples.forEach((s) => marker(g, s, "#000", 3));
      marker(g, state.pinned, "#000", 8);
      if (state.pointer) marker(g, state.pointer, "#c00", 12);
      const distance = (c) => Math.hypot(z[0] - means[c][0], z[1] - means[c][1]);
      const nearest = means.reduce((best, _, c) => (distance(c) < distance(best) ? c : best), 0);
      readout.textContent = (state.pointer ? "under the pointer" : "pinned") + "\nz = (" +
        z[0].toFixed(2) + ", " + z[1].toFixed(2) + ")\nnearest class mean: " + nearest;
    }
    function schedule() {
      if (!state.frame) state.frame = requestAnimationFrame(render);
    }

    function latentAt(event) {
      const box = plane.getBoundingClientRect();
      return toLatent((event.clientX - box.left) / box.width * PLOT,
        (event.clientY - box.top) / box.height * PLOT);
    }
    plane.addEventListener("pointermove", function (event) { state.pointer = latentAt(event); schedule(); });
    plane.addEventListener("pointerleave", function () { state.pointer = null; schedule(); });
    function pin(event) { state.pinned = latentAt(event); schedule(); }
    plane.addEventListener("click", pin);
    // A finger that drags over the plane and lifts pins the point where it lifted (no click follows a drag).
    plane.addEventListener("pointerup", function (event) { if (event.pointerType !== "mouse") pin(event); });

    function drawSamples(c) {
      state.digit = c;
      buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(i === c)));
      state.samples = [];
      for (let s = 0; s < SAMPLES; s++) {
        const z = [means[c][0] + gaussian(), means[c][1] + gaussian()];
        state.samples.push(z);
        paint(grid, decoder.decode(z), decoder.width, (s % 4) * decoder.width, Math.floor(s / 4) * decoder.height);
      }
      drawBackground();
      schedule();
    }

    drawSamples(0);
    root.hidden = false;
    return {
      decoder: decoder,
      /** Where the code z is drawn, in client (CSS) pixels. */
      clientPoint: function (z) {
        const box = plane.getBoundingClientRect(), [px, py] = toPixel(z);
        return [box.left + px / PLOT * box.width, box.top + py / PLOT * box.height];
      },
    };
  }

  function start() {
    const root = document.getElementById("cvae-explorer");
    if (!root) return;
    if (!window.CVAE_EXPLORER) throw new Error("explorer: its data file, cvae_explorer_data.js, did not load");
    const explorer = build(root, window.CVAE_EXPLORER), decoder = explorer.decoder;
    window.cvaeExplorer = {
      clientPoint: explorer.clientPoint,
      decode: (z) => Array.from(decoder.decode(z)),
      /** Decodes of random codes per second, over about `milliseconds`. */
      benchmark: function (milliseconds) {
        const start = performance.now();
        let n = 0;
        while (performance.now() - start < milliseconds) {
          decoder.decode([4 * Math.random() - 2, 4 * Math.random() - 2]);
          n++;
        }
        return n / ((performance.now() - start) / 1000);
      },
    };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
