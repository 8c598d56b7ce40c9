import * as tf from '@tensorflow/tfjs';
import type { GPTConfig } from '../../model/config';
import type { NamedTensors } from '../../tensors';
import type { Engine, EngineInfo, Model } from '../types';
import { TfjsModel } from './model';

export { TfjsModel };

/** The portable reference engine: GPT-2 on TF.js with autodiff, on whatever TF.js backend is active. */
export class TfjsEngine implements Engine {
  readonly name = 'tfjs';

  /** `notes` say why faster backends were not chosen (filled in by the Node backend selection). */
  constructor(private readonly notes: string[] = []) {}

  info(): EngineInfo {
    const backend = tf.getBackend();
    return {
      name: this.name,
      available: true,
      detail: `TF.js ${tf.version_core}, backend ${backend}`,
      notes: [...this.notes],
      facts: { engine: this.name, backend, build: `TF.js ${tf.version_core}`, precision: 'fp32' },
    };
  }

  async createModel(config: GPTConfig, weights: NamedTensors): Promise<Model> {
    await tf.ready();
    return new TfjsModel(config, weights);
  }
}
