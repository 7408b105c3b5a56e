// wlbtune pack (wlbtune.pack/1) and simulate --compare (wlbtune.simulate/1) as a page: policies
// or candidates side by side on the same documents. Their imbalance per step as a distribution
// and over the run, their per-token delay distribution, and the speedup bars (simulate: simulated
// step time; pack: the predicted forward time of each step's heaviest micro-batch, the pace the
// pipeline keeps, since pack simulates no step).
'use strict';

(function () {
    const W = WLB, h = W.h, r = W.report, kind = W.data.kind;
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));

    // One entry per policy / candidate, whatever the command.
    let entries, baselineName;
    if (kind === 'pack') {
        entries = (r.results || []).map((x) => ({
            name: x.name, summary: x.summary, policy: x.packing && x.packing.policy,
            imbalance: (x.steps && x.steps.predicted_imbalance) || [],
            steps: (x.steps && x.steps.step) || [],
            maxFwd: (x.steps && x.steps.predicted_max_fwd_seconds_per_layer) || [],
        }));
        // Against plain packing where it was run (--compare), else the one policy packed.
        const plain = entries.find((e) => e.policy === 'plain');
        baselineName = plain ? plain.name : entries.length ? entries[0].name : '';
        W.header('wlbtune pack', [
            `${r.data}`,
            `model ${r.model} on ${r.hardware}, layout ${r.layout}, context ${r.context_tokens} tokens; ${r.documents_read} documents read`,
            'Imbalance and forward times are predicted by the cost model; delays are exact (counted from the packing); nothing here is measured but the packing time.',
        ]);
    } else {
        entries = (r.compare || []).map((x) => ({
            name: x.name, role: x.role, summary: x.packing, speedup: x.predicted_speedup, meanStep: x.mean_step_seconds,
            imbalance: (x.per_step && x.per_step.predicted_imbalance) || [],
            stepSeconds: (x.per_step && x.per_step.step_seconds) || [],
            bubble: x.mean_bubble_fraction, cp: x.sharding && x.sharding.attention_imbalance,
        }));
        baselineName = r.compare_baseline;
        W.header('wlbtune simulate --compare', [
            r.data ? `${r.data.description} (${r.data.documents} documents, ${r.data.tokens} tokens read)` : null,
            `model ${r.model} on ${r.hardware}, layout ${r.layout && r.layout.spec} (${r.layout && r.layout.world_size} ranks), ` +
                `${r.schedule}, stage partition ${r.stage_partition}; every candidate on the same documents`,
            'Step times are simulated (the cost model through the step plan and the simulator), not measured; packing imbalance is predicted; delays are exact.',
        ]);
    }
    const names = entries.map((e) => e.name);
    const labelWidth = () => Math.max(110, Math.min(230, Math.floor(document.getElementById('wlb-page').clientWidth * 0.34)));

    // --- the answer ---------------------------------------------------------------------------
    if (kind === 'simulate' && entries.length) {
        const best = entries.reduce((a, b) => (b.speedup > a.speedup ? b : a));
        W.answer(`${best.name}: ${W.fix(best.speedup, 3)}x over ${baselineName}`, [
            `Predicted mean step ${W.secs(best.meanStep)} against ${W.secs(entries[0].meanStep)} for ${baselineName} ` +
                `(simulated on the same ${entries[0].stepSeconds.length} steps of documents).`,
            `Its packing: imbalance ${W.fix(best.summary.predicted_imbalance.mean, 3)} (mean over steps), ` +
                `delay ${W.fix(best.summary.delay_iterations.mean, 3)} iterations per token (max ${best.summary.delay_iterations.max}).`,
        ], [
            {k: 'speedup', v: `${W.fix(best.speedup, 3)}x`, kind: 'simulated'},
            {k: 'mean step', v: W.secs(best.meanStep), kind: 'simulated'},
            {k: 'packing imbalance', v: W.fix(best.summary.predicted_imbalance.mean, 3), kind: 'predicted'},
            {k: 'mean delay (iterations)', v: W.fix(best.summary.delay_iterations.mean, 3), kind: 'exact'},
        ]);
    } else if (entries.length) {
        const best = entries.reduce((a, b) => (b.summary.predicted_imbalance.mean < a.summary.predicted_imbalance.mean ? b : a));
        W.answer(`Most even: ${best.name}, imbalance ${W.fix(best.summary.predicted_imbalance.mean, 3)}`, [
            `Mean over ${best.summary.steps} steps of max / mean predicted micro-batch forward time` +
                (best.name !== baselineName ? `, against ${W.fix(entries[names.indexOf(baselineName)].summary.predicted_imbalance.mean, 3)} for ${baselineName}` : '') + '.',
            `Its cost: delay ${W.fix(best.summary.delay_iterations.mean, 3)} iterations per token on average (max ` +
                `${best.summary.delay_iterations.max}); ${best.summary.waiting_documents.at_end} documents still waiting at the end.`,
            'For step time and speedup, simulate the same policies: wlbtune simulate --data ... --compare --html FILE.',
        ], [
            {k: 'imbalance', v: W.fix(best.summary.predicted_imbalance.mean, 3), kind: 'predicted'},
            {k: 'imbalance p99', v: W.fix(best.summary.predicted_imbalance.p99, 3), kind: 'predicted'},
            {k: 'mean delay (iterations)', v: W.fix(best.summary.delay_iterations.mean, 3), kind: 'exact'},
            {k: 'policies', v: String(entries.length)},
        ]);
    }

    // --- speedup bars ----------------------------------------------------------------------------
    if (kind === 'simulate') {
        W.chart({
            id: 'speedup', title: `Predicted speedup over ${baselineName}`, kind: 'simulated',
            note: 'Baseline mean step time / candidate mean step time, both simulated on the same documents. Right of 1x is faster.',
            height: Math.max(220, entries.length * 40 + 80),
            option: {
                grid: W.grid({top: 24, right: 60}),
                tooltip: {trigger: 'item', formatter: (q) => `<b>${esc(entries[q.dataIndex].name)}</b>` +
                    (entries[q.dataIndex].role ? ` (${esc(entries[q.dataIndex].role)})` : '') +
                    `<br>${q.value}x; mean step ${W.secs(entries[q.dataIndex].meanStep)}`},
                xAxis: Object.assign({type: 'value', min: (v) => Math.min(0.9, Math.floor(v.min * 20) / 20),
                                      max: (v) => Math.ceil(v.max * 20) / 20 + 0.05}, W.xName('speedup (x), simulated')),
                yAxis: {type: 'category', inverse: true, data: names, axisLabel: {width: labelWidth(), overflow: 'break', lineHeight: 13}},
                series: [{
                    type: 'bar', barMaxWidth: 24, label: {show: true, position: 'right', formatter: (q) => `${q.value}x`},
                    data: entries.map((e) => ({value: W.round(e.speedup, 3), itemStyle: {color: e.speedup >= 1 ? '#2f5bd3' : '#8a93a3'}})),
                    markLine: {silent: true, symbol: 'none', lineStyle: {type: 'dashed', color: '#1d2330'}, label: {show: false}, data: [{xAxis: 1}]},
                }],
            },
        });
    } else if (entries.length && entries.every((e) => e.maxFwd.length)) {
        const mean = (v) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
        const pace = entries.map((e) => mean(e.maxFwd));
        const base = pace[Math.max(0, names.indexOf(baselineName))];
        const rel = pace.map((p) => (p > 0 ? base / p : 0));
        W.chart({
            id: 'speedup', title: `Pace against ${baselineName}: its heaviest micro-batch over each policy's`, kind: 'predicted',
            note: 'The pipeline waits for each step\'s heaviest micro-batch: the mean over steps of its predicted forward time (per layer), ' +
                `${baselineName}'s divided by each policy's. Right of 1x keeps a faster pace. A step time needs the simulator: wlbtune simulate --compare.`,
            height: Math.max(200, entries.length * 40 + 80),
            option: {
                grid: W.grid({top: 24, right: 60}),
                tooltip: {trigger: 'item', formatter: (q) => `<b>${esc(names[q.dataIndex])}</b><br>${q.value}x; heaviest micro-batch ` +
                    `${W.secs(pace[q.dataIndex])} per layer (mean over steps)`},
                xAxis: Object.assign({type: 'value', min: (v) => Math.min(0.9, Math.floor(v.min * 20) / 20),
                                      max: (v) => Math.ceil(v.max * 20) / 20 + 0.05}, W.xName('pace (x), predicted')),
                yAxis: {type: 'category', inverse: true, data: names, axisLabel: {width: labelWidth(), overflow: 'break', lineHeight: 13}},
                series: [{
                    type: 'bar', barMaxWidth: 24, label: {show: true, position: 'right', formatter: (q) => `${q.value}x`},
                    data: rel.map((x) => ({value: W.round(x, 3), itemStyle: {color: x >= 1 ? '#2f5bd3' : '#8a93a3'}})),
                    markLine: {silent: true, symbol: 'none', lineStyle: {type: 'dashed', color: '#1d2330'}, label: {show: false}, data: [{xAxis: 1}]},
                }],
            },
        });
    }

    // --- imbalance: distribution and over the run --------------------------------------------------
    const boxes = entries.map((e) => W.boxOf(e.imbalance));
    if (boxes.some((b) => b)) {
        W.chart({
            id: 'imbalance-box', title: 'Imbalance per step, distribution', kind: 'predicted',
            note: 'Per step: max / mean predicted forward time over its micro-batches (1 = even). Box: the middle half of the steps, ' +
                'the line inside the median, whiskers the least and most even step.',
            height: Math.max(220, entries.length * 44 + 90),
            option: {
                grid: W.grid({top: 24, right: 30}),
                tooltip: {trigger: 'item', formatter: (q) => {
                    const b = boxes[q.dataIndex];
                    return `<b>${esc(names[q.dataIndex])}</b><br>min ${W.fix(b[0])}, q1 ${W.fix(b[1])}, median ${W.fix(b[2])}, q3 ${W.fix(b[3])}, max ${W.fix(b[4])}`;
                }},
                xAxis: Object.assign({type: 'value', scale: true}, W.xName('imbalance (max / mean)')),
                yAxis: {type: 'category', inverse: true, data: names, axisLabel: {width: labelWidth(), overflow: 'break', lineHeight: 13}},
                series: [{type: 'boxplot', boxWidth: [8, 22], itemStyle: {color: '#dbe6f7', borderColor: '#2f5bd3'},
                          data: boxes.map((b) => (b ? b.map((x) => W.round(x, 4)) : [null, null, null, null, null]))}],
            },
        });
        const maxLen = Math.max(...entries.map((e) => e.imbalance.length));
        const stepIds = kind === 'pack' && entries[0].steps.length === maxLen ? entries[0].steps : [...Array(maxLen).keys()];
        W.chart({
            id: 'imbalance-steps', title: 'Imbalance over the run', kind: 'predicted',
            note: 'The same per-step imbalance in step order: a policy that drifts, or whose queues fill up, shows here.',
            height: 360,
            option: {
                legend: W.legend(),
                grid: W.grid({top: 64}),
                tooltip: {trigger: 'axis', valueFormatter: (x) => W.fix(x, 3)},
                dataZoom: maxLen > 120 ? [{type: 'inside'}] : undefined,
                xAxis: Object.assign({type: 'category', data: stepIds.map(String)}, W.xName('step')),
                yAxis: Object.assign({type: 'value', scale: true}, W.yName('imbalance (max / mean)')),
                series: entries.map((e) => ({name: e.name, type: 'line', showSymbol: maxLen <= 60, symbolSize: 4, sampling: 'lttb',
                                             data: e.imbalance.map((x) => W.round(x, 4))})),
            },
        });
    }

    // --- step time over the run (simulate) --------------------------------------------------------
    if (kind === 'simulate' && entries.some((e) => e.stepSeconds.length)) {
        const u = W.timeUnit(W.maxAbs([].concat(...entries.map((e) => e.stepSeconds))));
        const maxLen = Math.max(...entries.map((e) => e.stepSeconds.length));
        W.chart({
            id: 'step-times', title: 'Step time over the run', kind: 'simulated',
            note: 'Each candidate\'s simulated step time, step by step, on the same documents.',
            height: 360,
            option: {
                legend: W.legend(),
                grid: W.grid({top: 64}),
                tooltip: {trigger: 'axis', valueFormatter: (x) => `${x} ${u.unit}`},
                dataZoom: maxLen > 120 ? [{type: 'inside'}] : undefined,
                xAxis: Object.assign({type: 'category', data: [...Array(maxLen).keys()].map(String)}, W.xName('step')),
                yAxis: Object.assign({type: 'value', scale: true}, W.yName(`step time (${u.unit}), simulated`)),
                series: entries.map((e) => ({name: e.name, type: 'line', showSymbol: maxLen <= 60, symbolSize: 4, sampling: 'lttb',
                                             data: e.stepSeconds.map((x) => W.round(x / u.div, 4))})),
            },
        });
    }

    // --- delay distribution ------------------------------------------------------------------------
    const hists = entries.map((e) => e.summary && e.summary.delay_histogram).filter((x) => x);
    if (hists.length === entries.length && entries.length) {
        const maxDelay = Math.max(1, ...hists.map((d) => (d.iterations.length ? d.iterations[d.iterations.length - 1] : 0)));
        const series = entries.map((e) => {
            const d = e.summary.delay_histogram;
            const total = d.tokens.reduce((a, b) => a + b, 0);
            let seen = 0;
            const pts = d.iterations.map((it, i) => {
                seen += d.tokens[i];
                return [it, W.round(100 * seen / Math.max(1, total), 3)];
            });
            if (!pts.length || pts[pts.length - 1][0] < maxDelay)
                pts.push([maxDelay, pts.length ? pts[pts.length - 1][1] : 100]);
            return {name: e.name, type: 'line', step: 'end', symbolSize: 5, data: pts};
        });
        W.chart({
            id: 'delay-cdf', title: 'Delay per token, distribution', kind: 'exact',
            note: 'Share of tokens trained within a given delay (iterations between the step a document was drawn in and the step ' +
                'it was packed into), counted from the packing. A line that reaches 100% at 0 delays nothing.',
            height: 340,
            option: {
                legend: W.legend(),
                grid: W.grid({top: 64}),
                tooltip: {trigger: 'axis', valueFormatter: (x) => `${x}%`},
                xAxis: Object.assign({type: 'value', min: 0, max: maxDelay, minInterval: 1}, W.xName('delay (iterations)')),
                yAxis: Object.assign({type: 'value', max: 100, min: (v) => Math.max(0, Math.floor(v.min / 10) * 10)}, W.yName('tokens within the delay (%)')),
                series: series,
            },
        });
    }

    // --- the table ---------------------------------------------------------------------------------
    const sec = W.card(null, kind === 'pack' ? 'Policies' : 'Candidates', null,
                       kind === 'pack' ? 'Imbalance predicted; delay exact; packing time measured (wall clock of the packer).'
                                       : 'Step time simulated; imbalance predicted; delay exact.');
    if (kind === 'pack')
        W.table(sec, ['policy', 'steps', 'imbalance', 'p99', 'max', 'attn imb.', 'delay', 'p99', 'max', 'waiting at end', 'tokens / step', 'pack \u00b5s / step'],
                entries.map((e) => {
                    const s = e.summary;
                    return [e.name, String(s.steps), W.fix(s.predicted_imbalance.mean), W.fix(s.predicted_imbalance.p99), W.fix(s.predicted_imbalance.max),
                            W.fix(s.attention_imbalance.mean), W.fix(s.delay_iterations.mean), String(s.delay_iterations.p99), String(s.delay_iterations.max),
                            String(s.waiting_documents.at_end), `${Math.round(s.step_tokens.mean)} / ${s.step_tokens.budget}`, W.fix(s.pack_seconds.mean * 1e6, 1)];
                }), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    else
        W.table(sec, ['candidate', 'role', 'step', 'speedup', 'imbalance', 'delay', 'max', 'CP attn imb.', 'bubble'], entries.map((e) => [
            e.name, e.role || '', W.secs(e.meanStep), `${W.fix(e.speedup, 3)}x`, W.fix(e.summary.predicted_imbalance.mean),
            W.fix(e.summary.delay_iterations.mean), String(e.summary.delay_iterations.max), W.fix(e.cp && e.cp.mean), W.pct(e.bubble),
        ]), [2, 3, 4, 5, 6, 7, 8]);

    W.footer([r.note ? `Note: ${r.note}.` : null]);
    W.done();
})();
