/**
 * The Evals page: HellaSwag in one click (results, reference points, a per-example browser) and the token-loss
 * view. Other pages link here with `#/evals?model=<ModelEntry.key>` (the model to evaluate) or
 * `#/evals?eval=<evalId>` (an evaluation to open); `tab=tokens` opens the token-loss view.
 */
import { useEffect, useRef, useState, type KeyboardEvent } from 'react';
import type { ModelEntry } from '../../../shared/models';
import { pageHref, useHashQuery } from '../../router';
import { useClient } from '../../useInvoke';
import { evalModelKey, type Eval } from './evals-info';
import { HellaswagTab } from './HellaswagTab';
import { TokenLossTab } from './TokenLossTab';
import './evals.css';
import './evals-examples.css';

type Tab = 'hellaswag' | 'tokens';
const TABS: Array<{ id: Tab; label: string }> = [
  { id: 'hellaswag', label: 'HellaSwag' },
  { id: 'tokens', label: 'Token loss' },
];

export function EvalsPage() {
  const client = useClient();
  const query = useHashQuery();
  const qModel = query.get('model') ?? undefined;
  const qEval = query.get('eval') ?? undefined;
  const qTab: Tab = query.get('tab') === 'tokens' ? 'tokens' : 'hellaswag';
  const [tab, setTab] = useState<Tab>(qEval ? 'hellaswag' : qTab);
  const [modelKey, setModelKey] = useState<string | undefined>(qModel);
  const [model, setModel] = useState<ModelEntry | undefined>(undefined);
  const [selectedEval, setSelectedEval] = useState<string | undefined>(qEval);
  const tabRefs = useRef<Record<Tab, HTMLButtonElement | null>>({ hellaswag: null, tokens: null });

  // a link followed while the page is open (the page stays mounted across query changes)
  useEffect(() => {
    if (qModel) setModelKey(qModel);
  }, [qModel]);
  useEffect(() => {
    if (!qEval) return;
    setSelectedEval(qEval);
    setTab('hellaswag');
  }, [qEval]);
  useEffect(() => {
    if (!qEval) setTab(qTab);
  }, [qTab, qEval]);

  // an eval opened from a link, without a model: choose that eval's model
  useEffect(() => {
    if (!qEval || qModel) return;
    let live = true;
    client.invoke('evals-get', { id: qEval }).then(
      (ev) => {
        if (live) setModelKey((k) => k ?? evalModelKey(ev));
      },
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [client, qEval, qModel]);

  // the address says what is shown, so that it can be bookmarked or shared (replaceState: no new history entry)
  useEffect(() => {
    const want = pageHref('evals', {
      tab: tab === 'tokens' ? 'tokens' : undefined,
      model: modelKey,
      eval: tab === 'hellaswag' ? selectedEval : undefined,
    });
    if (window.location.hash !== want) window.history.replaceState(window.history.state, '', want);
  }, [tab, modelKey, selectedEval]);

  const onModel = (m: ModelEntry | undefined) => {
    setModel(m);
    setModelKey(m?.key);
  };

  const onSelectEval = (id: string | undefined, ev?: Eval) => {
    setSelectedEval(id);
    if (ev && !modelKey) setModelKey(evalModelKey(ev));
  };

  const onTabKey = (e: KeyboardEvent<HTMLDivElement>) => {
    const i = TABS.findIndex((t) => t.id === tab);
    const to =
      e.key === 'ArrowRight'
        ? (i + 1) % TABS.length
        : e.key === 'ArrowLeft'
          ? (i + TABS.length - 1) % TABS.length
          : e.key === 'Home'
            ? 0
            : e.key === 'End'
              ? TABS.length - 1
              : -1;
    if (to < 0) return;
    e.preventDefault();
    setTab(TABS[to]!.id);
    tabRefs.current[TABS[to]!.id]?.focus();
  };

  return (
    <div className="stack evals-page">
      <div className="evals-tabs" role="tablist" aria-label="Evaluations" onKeyDown={onTabKey}>
        {TABS.map((t) => (
          <button
            key={t.id}
            ref={(el) => {
              tabRefs.current[t.id] = el;
            }}
            type="button"
            role="tab"
            id={`evals-tab-${t.id}`}
            aria-controls={`evals-panel-${t.id}`}
            aria-selected={tab === t.id}
            tabIndex={tab === t.id ? 0 : -1}
            className="evals-tab"
            onClick={() => setTab(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`evals-panel-${tab}`} aria-labelledby={`evals-tab-${tab}`}>
        {tab === 'hellaswag' ? (
          <HellaswagTab
            modelKey={modelKey}
            model={model}
            onModel={onModel}
            selectedEval={selectedEval}
            onSelectEval={onSelectEval}
          />
        ) : (
          <TokenLossTab modelKey={modelKey} model={model} onModel={onModel} />
        )}
      </div>
    </div>
  );
}
