// The README's main job. Grows with the project: today it proves the packages build and load.
import { shapeConfig } from "../packages/h1b-format/dist/index.js";

const config = shapeConfig("bitnet-2b-4t");
console.log(`halo: packages built. 2B-4T shape: ${config.numLayers} layers, hidden ${config.hiddenSize}, vocab ${config.vocabSize}`);
