// wlbtune tune as a page (wlbtune.config/1): the tuned configuration first, then step time
// against mean delay for every candidate the search evaluated with the feasible front, the tuned
// point, the paper's settings and the baselines marked, what each knob bought, and the table of
// the leading configurations. Every step time is simulated.
'use strict';

(function () {
    const W = WLB, h = W.h, r = W.report;
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
    const p = r.predicted || {}, win = r.winner || {}, base = r.baselines || {}, cons = r.constraints || {};
    const search = r.search || {};
    const sample = search.sample_steps;

    W.header('wlbtune tune', [
        `${(r.data && r.data.description) || ''}`,
        `model ${r.model && r.model.name} on ${r.hardware && r.hardware.name}, layout ${r.layout && r.layout.spec}, ` +
            `context ${r.context_tokens} tokens; every candidate on the same ${sample} steps of these documents`,
        'Step times are simulated: predicted by the cost model through the step plan and the simulator, not measured.',
    ]);
    const speed = p.speedup || {};
    W.answer(`Tuned: ${p.name || win.name}`, [
        `Predicted step ${W.secs(p.step_seconds)}: ${W.fix(speed.over_plain, 3)}x vs plain + per-seq, ` +
            `${W.fix(speed.over_fixed_greedy, 3)}x vs the best fixed-greedy, ${W.fix(speed.over_paper, 3)}x vs the paper's settings.`,
        `Mean delay ${W.fix(p.delay_iterations && p.delay_iterations.mean, 3)} iterations per token (limit ${cons.max_mean_delay_iterations})` +
            (cons.max_delay_steps ? `, largest ${p.delay_iterations && p.delay_iterations.max} (limit ${cons.max_delay_steps})` : '') +
            `; memory peak ${W.fix(p.memory_peak_gbytes, 1)} GB per rank (estimated).`,
        h('span', {}, 'Apply it: ', h('code', {}, 'wlbtune pack --config TUNED.json -o plan.jsonl.gz')),
    ], [
        {k: 'step time', v: W.secs(p.step_seconds), kind: 'simulated'},
        {k: 'speedup over plain', v: `${W.fix(speed.over_plain, 3)}x`, kind: 'simulated'},
        {k: 'mean delay (iterations)', v: W.fix(p.delay_iterations && p.delay_iterations.mean, 3), kind: 'exact'},
        {k: 'packing imbalance', v: W.fix(p.imbalance, 3), kind: 'predicted'},
        {k: 'evaluations', v: String(search.evaluations)},
    ]);

    // --- step time against delay ------------------------------------------------------------
    const cands = search.candidates || [];
    const all = cands.map((c) => c.step_seconds).concat([win.step_seconds]);
    const u = W.timeUnit(W.maxAbs(all));
    const pt = (c, extra) => Object.assign({value: [W.round(c.delay_mean_iterations, 4), W.round(c.step_seconds / u.div, 4)], c: c}, extra || {});
    const full = cands.filter((c) => c.steps === sample), early = cands.filter((c) => c.steps !== sample);
    const feasible = full.filter((c) => c.feasible), infeasible = full.filter((c) => !c.feasible);
    // The feasible front: no other feasible candidate is both faster and less delayed.
    const sorted = [...feasible].sort((a, b) => a.delay_mean_iterations - b.delay_mean_iterations || a.step_seconds - b.step_seconds);
    const front = [];
    for (const c of sorted)
        if (!front.length || c.step_seconds < front[front.length - 1].step_seconds)
            front.push(c);
    const asPoint = (x) => x && x.name ? {name: x.name, step_seconds: x.step_seconds, delay_mean_iterations: x.delay_iterations.mean,
                                          delay_max_iterations: x.delay_iterations.max, feasible: x.feasible, infeasible: x.infeasible, steps: x.steps} : null;
    const marked = [
        {label: 'tuned', c: asPoint(win), symbol: 'pin', size: 26, color: '#c0392b'},
        {label: 'paper\'s settings', c: asPoint(base.paper), symbol: 'diamond', size: 16, color: '#8a4baf'},
        {label: 'best fixed-greedy', c: asPoint(base.fixed_greedy), symbol: 'triangle', size: 14, color: '#f3a712'},
        {label: 'plain', c: asPoint(base.plain), symbol: 'rect', size: 13, color: '#1d2330'},
    ].filter((m) => m.c);
    const series = [];
    if (feasible.length)
        series.push({name: 'feasible', type: 'scatter', symbolSize: 8, itemStyle: {color: '#2f5bd3', opacity: 0.75}, data: feasible.map((c) => pt(c))});
    if (infeasible.length)
        series.push({name: 'breaks a constraint', type: 'scatter', symbol: 'emptyCircle', symbolSize: 8, itemStyle: {color: '#8a93a3'},
                     data: infeasible.map((c) => pt(c))});
    if (early.length)
        series.push({name: 'screened out on fewer steps', type: 'scatter', symbolSize: 5, itemStyle: {color: '#b9cfe9', opacity: 0.8},
                     data: early.map((c) => pt(c))});
    if (front.length)
        series.push({name: 'feasible front', type: 'line', step: 'end', symbol: 'none', z: 1,
                     lineStyle: {color: '#2f5bd3', width: 1.5, type: 'dashed'}, itemStyle: {color: '#2f5bd3'}, data: front.map((c) => pt(c).value)});
    for (const m of marked)
        series.push({name: m.label, type: 'scatter', symbol: m.symbol, symbolSize: m.size, z: 5, itemStyle: {color: m.color},
                     data: [pt(m.c)]});
    if (series.length)
        series[0].markLine = {
            silent: true, symbol: 'none', lineStyle: {type: 'dotted', color: '#c0392b'},
            label: {formatter: `delay limit ${cons.max_mean_delay_iterations}`, position: 'insideEndTop'},
            data: [{xAxis: cons.max_mean_delay_iterations}],
        };
    W.chart({
        id: 'tune-scatter', title: 'Step time against mean delay, every candidate evaluated', kind: 'simulated',
        note: `Each point a candidate (packing x CP sharding) on the ${sample}-step sample; the faint ones were screened out on ` +
            'fewer steps, so their step times are not exactly comparable. Down and to the left is better: the dashed line is ' +
            'the feasible front (no feasible candidate is both faster and less delayed). Delay is exact (counted from the packing).',
        height: 440,
        option: {
            legend: W.legend(),
            grid: W.grid({top: 70}),
            tooltip: {
                trigger: 'item',
                formatter: (q) => {
                    if (!q.data || !q.data.c)
                        return esc(q.seriesName);
                    const c = q.data.c;
                    return `<b>${esc(c.name)}</b><br>step ${W.secs(c.step_seconds)} (${c.steps} steps), mean delay ${W.fix(c.delay_mean_iterations, 3)}` +
                        `, max ${c.delay_max_iterations}<br>` + (c.feasible ? 'feasible' : `breaks: ${esc(c.infeasible || '')}`);
                },
            },
            xAxis: Object.assign({type: 'value', min: 0}, W.xName('mean delay (iterations per token)')),
            yAxis: Object.assign({type: 'value', scale: true}, W.yName(`step time (${u.unit}), simulated`)),
            series: series,
        },
    });

    // --- what each knob bought ----------------------------------------------------------------
    const knobs = r.knobs || [];
    if (knobs.length) {
        const labelOf = (k) => `${k.knob}: ${k.tuned} \u2192 ${k.reverted}`;
        W.chart({
            id: 'knobs', title: 'What each knob bought', kind: 'simulated',
            note: 'The tuned configuration with one knob set back at a time: how much slower the step is without it. ' +
                'A revert that breaks a constraint is marked in the tooltip.',
            height: Math.max(200, knobs.length * 46 + 90),
            option: {
                grid: W.grid({top: 30, left: 12, right: 70}),
                tooltip: {
                    trigger: 'item',
                    formatter: (q) => {
                        const k = knobs[q.dataIndex];
                        return `<b>${esc(labelOf(k))}</b><br>step ${W.secs(k.step_seconds_without)} without it (${q.value >= 0 ? '+' : ''}${q.value}%)` +
                            `; mean delay ${W.fix(k.delay_mean_without, 3)}; ${k.feasible_without ? 'feasible' : 'breaks a constraint'}`;
                    },
                },
                xAxis: Object.assign({type: 'value'}, W.xName('slower without the knob (%)')),
                yAxis: {type: 'category', inverse: true, data: knobs.map(labelOf), axisLabel: {width: Math.max(110, Math.min(220, Math.floor(document.getElementById('wlb-page').clientWidth * 0.34))), overflow: 'break', lineHeight: 13}},
                series: [{
                    type: 'bar', barMaxWidth: 26, label: {show: true, position: 'right', formatter: (q) => `${q.value >= 0 ? '+' : ''}${q.value}%`},
                    data: knobs.map((k) => ({value: W.round((k.slowdown_without - 1) * 100, 2), itemStyle: {color: k.feasible_without ? '#29a39b' : '#8a93a3'}})),
                }],
            },
        });
    } else {
        W.card(null, 'What each knob bought', 'simulated', 'The tuned configuration is plain packing with per-sequence sharding: no knob to set back.');
    }

    // --- leading configurations -----------------------------------------------------------------
    const sec = W.card(null, 'Configurations', 'simulated', 'Step time simulated; imbalance predicted by the cost model; delay exact. vs plain = plain step time / this one.');
    const rows = [['tuned', win], ['paper', base.paper], ['fixed-greedy', base.fixed_greedy], ['plain', base.plain]]
        .concat((r.runners_up || []).map((x, i) => [`runner-up ${i + 1}`, x])).filter((x) => x[1]);
    W.table(sec, ['', 'configuration', 'step', 'vs plain', 'imbalance', 'CP imb.', 'bubble', 'delay', 'max', 'feasible'], rows.map(([role, c]) => [
        role, c.name, W.secs(c.step_seconds), `${W.fix(base.plain && base.plain.step_seconds / c.step_seconds, 3)}x`, W.fix(c.imbalance, 3),
        W.fix(c.cp_attention_imbalance, 3), W.pct(c.bubble_fraction), W.fix(c.delay_iterations && c.delay_iterations.mean, 3),
        String(c.delay_iterations ? c.delay_iterations.max : ''), c.feasible ? 'yes' : `no: ${c.infeasible}`,
    ]), [2, 3, 4, 5, 6, 7, 8]);

    const st = search.stability || {};
    W.footer([
        `Search: ${search.evaluations} evaluations in ${W.fix(search.elapsed_seconds, 1)} s on ${search.threads} threads; ranking ` +
            `over ${st.candidates} feasible candidates ${st.stable ? 'stable' : 'not stable'} between the sample's halves ` +
            `(Kendall tau ${W.fix(st.kendall_tau, 2)}, regret ${W.pct(st.regret, 2)}).` + (search.stopped_by_budget ? ' The time budget cut the search short.' : ''),
        (r.notes || []).length ? 'Notes: ' + r.notes.join('; ') : null,
    ]);
    W.done();
})();
