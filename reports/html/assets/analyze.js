// wlbtune analyze as a page (wlbtune.analysis/1): the answer first (lost share, dominant cause,
// the change), lost seconds by cause per step, rank x step heatmaps of compute and exposed
// communication, the heavy micro-batches and CP ranks, the work check's measured-vs-predicted
// scatter where the batches are known, the stragglers, and a link to the Perfetto trace.
'use strict';

(function () {
    const W = WLB, h = W.h, r = W.report, ranks = W.view.ranks;
    const job = r.job || {}, summary = r.summary || {};
    const causeOrder = ['pp_packing', 'cp_sharding', 'dp_imbalance', 'stage_partitioning', 'slow_worker', 'communication'];
    const causeColor = {
        pp_packing: '#2f5bd3', cp_sharding: '#e4572e', dp_imbalance: '#f3a712',
        stage_partitioning: '#29a39b', slow_worker: '#8a4baf', communication: '#6c757d',
    };
    const titles = {};
    for (const c of r.causes || [])
        titles[c.cause] = c.title;
    const title = (c) => titles[c] || c;
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]));
    const attributed = (r.steps || []).filter((s) => s.attributed);

    // --- header and answer -------------------------------------------------------------------
    W.header('wlbtune analyze', [
        `${job.format} traces, layout ${job.layout} (order ${job.order}, from the ${job.layout_source}), ` +
            `${job.ranks_present} of ${job.world_size} ranks, ${(job.steps || []).length} steps` +
            (job.step_selection ? ` (${job.step_selection})` : ''),
        job.note ? 'Trace: ' + job.note : null,
    ]);
    if (summary.attributed_steps > 0) {
        const dom = summary.dominant_cause;
        const domCause = (r.causes || []).find((c) => c.cause === dom);
        const lines = [];
        if (dom && domCause)
            lines.push(h('span', {}, h('b', {}, 'Dominant cause: '), `${title(dom)}, ${W.secs(domCause.lost_seconds_per_step)} per step ` +
                `(${W.pct(domCause.fraction_of_step)} of the step).`));
        if (r.recommendation) {
            lines.push(h('span', {}, h('b', {}, 'Change: '), r.recommendation.change));
            lines.push(h('code', {}, r.recommendation.command));
        }
        lines.push(h('span', {class: 'note'}, 'Lost time is a simulated what-if: the measured durations replayed on the simulator, ' +
            'each cause evened out in turn and all together.'));
        W.answer(`${W.pct(summary.lost_fraction)} of step time lost` + (dom ? ` \u2014 mostly to ${title(dom)}` : ''), lines, [
            {k: 'measured step', v: W.secs(summary.measured_seconds_per_step), kind: 'measured'},
            {k: 'replayed step', v: W.secs(summary.replay_seconds_per_step), kind: 'simulated'},
            {k: 'with every cause evened', v: W.secs(summary.ideal_seconds_per_step), kind: 'simulated'},
            {k: 'lost per step', v: W.secs(summary.lost_seconds_per_step), kind: 'simulated'},
            {k: 'steps attributed', v: `${summary.attributed_steps} of ${(r.steps || []).length}`},
        ]);
    } else {
        W.answer('No step could be attributed', [(r.steps || []).map((s) => s.skipped_reason).filter((x) => x)[0] ||
            'the traces hold no complete step'], []);
    }

    // --- lost seconds by cause per step ------------------------------------------------------
    if (attributed.length) {
        const all = [];
        for (const s of attributed) {
            all.push(s.lost_seconds);
            for (const c of causeOrder)
                all.push(s.causes[c] ? s.causes[c].lost_seconds : 0);
        }
        const u = W.timeUnit(W.maxAbs(all));
        const series = causeOrder.map((c) => ({
            name: title(c), type: 'bar', stack: 'lost', barMaxWidth: 36, itemStyle: {color: causeColor[c]},
            data: attributed.map((s) => W.round((s.causes[c] ? s.causes[c].lost_seconds : 0) / u.div, 4)),
        }));
        series.push({
            name: 'all causes evened together', type: 'line', symbol: 'circle', symbolSize: 6,
            lineStyle: {color: '#1d2330', width: 2}, itemStyle: {color: '#1d2330'},
            data: attributed.map((s) => W.round(s.lost_seconds / u.div, 4)),
        });
        W.chart({
            id: 'lost-by-cause', title: 'Seconds lost per step, by cause', kind: 'simulated',
            note: 'Each bar: what one cause costs the step (the replay minus the replay with that cause evened out). ' +
                'The line: every cause evened out together; causes interact, so the bars need not add up to it.',
            height: 360,
            option: {
                legend: W.legend(),
                grid: W.grid({top: 64}),
                tooltip: {trigger: 'axis', axisPointer: {type: 'shadow'}, valueFormatter: (x) => `${x} ${u.unit}`},
                xAxis: Object.assign({type: 'category', data: attributed.map((s) => String(s.step))}, W.xName('step')),
                yAxis: Object.assign({type: 'value'}, W.yName(`lost per step (${u.unit})`)),
                series: series,
            },
        });
    }

    // --- rank x step heatmaps ------------------------------------------------------------------
    const tpGroups = ranks.rows_are === 'tp_groups';
    const groupNote = () => {
        const parts = [];
        if (tpGroups)
            parts.push('One row per TP group: in this trace TP peers carry copies of their TP rank 0, so one row shows them all.');
        const grouped = [];
        if (ranks.units_per_row > 1)
            grouped.push(`each row is ${ranks.units_per_row} consecutive ${tpGroups ? 'TP groups' : 'ranks'}`);
        if (ranks.steps_per_column > 1)
            grouped.push(`each column ${ranks.steps_per_column} consecutive steps`);
        if (grouped.length)
            parts.push(`The job has ${ranks.world_size} ranks and ${(job.steps || []).length} steps: ${grouped.join(', ')}, and a cell shows the largest value it covers.`);
        return parts.length ? ' ' + parts.join(' ') : '';
    };
    function rankHeatmap(id, titleText, matrix, colors, what, note) {
        const cells = [];
        let lo = Infinity, hi = -Infinity;
        matrix.forEach((line, y) => line.forEach((v, x) => {
            if (v == null)
                return;
            cells.push([x, y, v]);
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
        }));
        const sec = cells.length ? null : W.card(null, titleText, 'measured', 'No rank reported this in any step.');
        if (sec)
            return;
        const u = W.timeUnit(hi);
        const data = cells.map((c) => [c[0], c[1], W.round(c[2] / u.div, 4)]);
        const min = W.round(lo / u.div, 4), max = Math.max(W.round(hi / u.div, 4), min + 1e-6);
        const rows = ranks.rows, cols = ranks.columns;
        const colName = (c) => c.first_step === c.last_step ? String(c.first_step) : `${c.first_step}-${c.last_step}`;
        W.chart({
            id: id, title: titleText, kind: 'measured', note: note + groupNote(),
            height: Math.max(240, Math.min(720, rows.length * 16)) + 110,
            option: {
                grid: W.grid({top: 36, bottom: 96}),
                tooltip: {
                    trigger: 'item',
                    formatter: (p) => {
                        const row = rows[p.value[1]], col = cols[p.value[0]];
                        const who = (row.ranks === 1 ? `rank ${row.label}` : `ranks ${row.label}`) + (row.place ? ` (${row.place})` : ' (the largest)');
                        return `${esc(who)}<br>step ${esc(colName(col))}: <b>${p.value[2]} ${u.unit}</b> ${esc(what)}`;
                    },
                },
                xAxis: Object.assign({type: 'category', data: cols.map(colName), splitArea: {show: false}}, W.xName('step')),
                yAxis: Object.assign({type: 'category', data: rows.map((x) => x.label)},
                                     W.yName(tpGroups || ranks.units_per_row > 1 ? 'ranks' : 'rank', true)),
                visualMap: {
                    min: min, max: max, calculable: false, orient: 'horizontal', left: 'center', bottom: 0,
                    itemWidth: 12, itemHeight: 180, precision: 2, inRange: {color: colors},
                    text: [`${W.fix(max, 2)} ${u.unit}`, `${W.fix(min, 2)} ${u.unit}  `],
                },
                // No hover state per cell (thousands of them); the tooltip names the cell.
                series: [{type: 'heatmap', data: data, emphasis: {disabled: true}}],
            },
        });
    }
    rankHeatmap('compute-heatmap', 'Compute time per rank and step', ranks.compute_seconds,
                ['#f4f7fb', '#b9cfe9', '#5b8fd0', '#24549e', '#0d2c5e'], 'compute',
                'Compute (attention, linear and other kernels) each rank ran in each step. Rows that stay dark step after step ' +
                'are heavy ranks; a dark column is a heavy step.');
    rankHeatmap('comm-heatmap', 'Exposed communication per rank and step', ranks.exposed_comm_seconds,
                ['#fdf6ec', '#f8d39b', '#f0a04b', '#c8601c', '#7f2f0b'], 'exposed communication',
                'Communication with no compute running beside it (TP, CP, PP and DP lanes together): time a rank waited for its peers or the network.');

    // --- heavy micro-batches and CP ranks --------------------------------------------------------
    function involvementHeatmap(parent, id, titleText, cause, rowOf, note, empty) {
        const rowIndex = new Map(), cells = new Map();
        attributed.forEach((s, x) => {
            for (const inv of (s.causes[cause] && s.causes[cause].involved) || []) {
                const row = rowOf(inv.what);
                if (!row)
                    continue;
                if (!rowIndex.has(row.key))
                    rowIndex.set(row.key, row);
                const k = row.key + '|' + x;
                const prev = cells.get(k);
                if (!prev || inv.factor > prev.factor)
                    cells.set(k, {x: x, key: row.key, factor: inv.factor, what: inv.what});
            }
        });
        if (!cells.size) {
            W.card(parent, titleText, 'measured', empty);
            return;
        }
        const rows = [...rowIndex.values()].sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1]);
        const y = new Map(rows.map((row, i) => [row.key, i]));
        let hi = 1;
        const data = [...cells.values()].map((c) => {
            hi = Math.max(hi, c.factor);
            return {value: [c.x, y.get(c.key), W.round(c.factor, 3)], what: c.what};
        });
        W.chart({
            parent: parent, id: id, title: titleText, kind: 'measured', note: note,
            height: Math.max(200, Math.min(520, rows.length * 22)) + 110,
            option: {
                grid: W.grid({top: 36, bottom: 96}),
                tooltip: {trigger: 'item', formatter: (p) => `step ${esc(attributed[p.value[0]].step)}: ${esc(p.data.what)}<br><b>${p.value[2]}x</b> the mean`},
                xAxis: Object.assign({type: 'category', data: attributed.map((s) => String(s.step))}, W.xName('step')),
                yAxis: Object.assign({type: 'category', data: rows.map((x) => x.label)}, W.yName('', true)),
                visualMap: {
                    min: 1, max: Math.max(hi, 1.03), calculable: false, orient: 'horizontal', left: 'center', bottom: 0,
                    itemWidth: 12, itemHeight: 160, precision: 2, inRange: {color: ['#fff1d6', '#f3a712', '#c0392b']},
                    text: [`${W.fix(Math.max(hi, 1.03), 2)}x`, '1x  '],
                },
                series: [{type: 'heatmap', data: data}],
            },
        });
    }
    if (attributed.length) {
        const g = W.row();
        involvementHeatmap(g, 'heavy-micro-batches', 'Heavy micro-batches', 'pp_packing', (what) => {
            const m = /^dp(\d+) micro-batch (\d+)$/.exec(what);
            return m ? {key: what, label: `dp${m[1]} mb ${m[2]}`, order: [+m[1], +m[2]]} : null;
        }, 'A cell: a micro-batch whose compute over all its stages and CP ranks (a slow worker\'s speed divided out) ' +
           'was more than 2% above its DP replica\'s mean in that step, as a multiple of the mean.',
        'No micro-batch stood out: none was more than 2% above its DP replica\'s mean in any step.');
        involvementHeatmap(g, 'heavy-cp-ranks', 'Heavy CP ranks', 'cp_sharding', (what) => {
            const m = /^dp(\d+) micro-batch (\d+): CP rank (\d+)$/.exec(what);
            return m ? {key: `dp${m[1]} cp${m[3]}`, label: `dp${m[1]} CP rank ${m[3]}`, order: [+m[1], +m[3]]} : null;
        }, 'A cell: a CP rank whose compute for a micro-batch was more than 2% above its CP group\'s mean, as a multiple ' +
           'of the mean (the heaviest micro-batch of the step when several).',
        'No CP rank stood out: none was more than 2% above its CP group\'s mean for a micro-batch in any step.');
    }

    // --- the work check: measured against the batches' predicted work -------------------------
    const wc = r.work_check;
    if (wc && wc.available && wc.cells && wc.cells.measured_seconds && wc.cells.measured_seconds.length) {
        const c = wc.cells, n = c.measured_seconds.length;
        const u = W.timeUnit(Math.max(W.maxAbs(c.measured_seconds), W.maxAbs(c.predicted_seconds)));
        const byCp = new Map();
        let lo = Infinity, hi = 0;
        for (let i = 0; i < n; ++i) {
            const cp = c.cp_rank[i];
            if (!byCp.has(cp))
                byCp.set(cp, []);
            const x = W.round(c.predicted_seconds[i] / u.div, 4), y = W.round(c.measured_seconds[i] / u.div, 4);
            lo = Math.min(lo, x, y);
            hi = Math.max(hi, x, y);
            byCp.get(cp).push({value: [x, y], step: c.step[i], replica: c.replica[i], mb: c.micro_batch[i], tokens: c.tokens[i]});
        }
        const series = [...byCp.keys()].sort((a, b) => a - b).map((cp) => ({
            name: `CP rank ${cp}`, type: 'scatter', symbolSize: 7, data: byCp.get(cp),
            // Past a few thousand cells, one path per series (the tooltip still finds points).
            large: n > 2000, largeThreshold: 2000,
        }));
        series.push({
            name: 'measured = predicted', type: 'line', symbol: 'none', silent: true,
            lineStyle: {type: 'dashed', color: '#8a93a3', width: 1}, itemStyle: {color: '#8a93a3'},
            data: [[lo, lo], [hi, hi]],
        });
        const agree = [];
        if (wc.heaviest_micro_batch && wc.heaviest_micro_batch.groups)
            agree.push(`the heaviest micro-batch as predicted in ${wc.heaviest_micro_batch.as_predicted} of ${wc.heaviest_micro_batch.groups}`);
        if (wc.heaviest_cp_rank && wc.heaviest_cp_rank.groups)
            agree.push(`the heaviest CP rank as predicted in ${wc.heaviest_cp_rank.as_predicted} of ${wc.heaviest_cp_rank.groups}`);
        W.chart({
            id: 'work-check', title: 'Measured compute against the batches\' predicted work', kind: 'measured',
            note: `One point per (step, replica, micro-batch, CP rank): its compute over every stage and pass, measured (up), and ` +
                `predicted from its tokens and attention pairs (across; fitted per stage and pass on these steps, in-sample). ` +
                (wc.correlation != null ? `Correlation r = ${W.fix(wc.correlation, 3)} over ${n} cells` : `${n} cells`) +
                (agree.length ? `; ${agree.join(', ')}.` : '.') +
                ' Points on the dashed line: the imbalance is in the data, which packing and sharding decide.',
            height: 380,
            option: {
                legend: W.legend(),
                grid: W.grid({top: 64}),
                tooltip: {
                    trigger: 'item',
                    formatter: (p) => p.data.step == null ? esc(p.seriesName) :
                        `step ${p.data.step}, dp${p.data.replica} micro-batch ${p.data.mb}, ${esc(p.seriesName)}<br>` +
                        `measured <b>${p.value[1]} ${u.unit}</b>, predicted ${p.value[0]} ${u.unit}; ${p.data.tokens} tokens`,
                },
                xAxis: Object.assign({type: 'value', scale: true}, W.xName(`predicted from the batch (${u.unit})`)),
                yAxis: Object.assign({type: 'value', scale: true}, W.yName(`measured compute (${u.unit})`)),
                series: series,
            },
        });
    } else if (wc && !wc.available) {
        W.card(null, 'Measured compute against the batches\' predicted work', null,
               `No work check: ${wc.reason || 'the trace records no batches'}.`);
    }

    // --- stragglers -----------------------------------------------------------------------------
    const speed = (r.stragglers && r.stragglers.relative_speed) || [];
    const arrivals = (r.stragglers && r.stragglers.last_arrival) || [];
    if (speed.length || arrivals.length) {
        const g = W.row();
        if (speed.length) {
            const slowest = speed.reduce((a, b) => (b.relative_time > a.relative_time ? b : a));
            const values = speed.map((s) => W.round((s.relative_time - 1) * 100, 3));
            W.chart({
                parent: g, id: 'relative-speed', title: 'Slower than peers on the same kernels', kind: 'measured',
                note: `Each rank's time on the kernels it shares with its peers (same name, step and micro-batch; attention left out), ` +
                    `over the peers' median. Over 2% (the dashed line) is a slow worker. Slowest: rank ${slowest.rank} at ` +
                    `${slowest.relative_time >= 1 ? '+' : ''}${W.fix((slowest.relative_time - 1) * 100, 2)}%.`,
                height: 320,
                option: {
                    grid: W.grid({top: 40}),
                    tooltip: {trigger: 'axis', valueFormatter: (x) => `${x >= 0 ? '+' : ''}${x}%`},
                    xAxis: Object.assign({type: 'category', data: speed.map((s) => String(s.rank))}, W.xName('rank')),
                    yAxis: Object.assign({type: 'value', max: (v) => Math.max(3, Math.ceil(v.max + 0.5)), min: (v) => Math.min(0, Math.floor(v.min))},
                                         W.yName('slower than peers (%)')),
                    series: [{
                        name: 'slower than peers', type: 'bar', barMaxWidth: 24,
                        data: values.map((x) => ({value: x, itemStyle: {color: x > 2 ? '#c0392b' : '#5b8fd0'}})),
                        markLine: {silent: true, symbol: 'none', lineStyle: {type: 'dashed', color: '#c0392b'},
                                   label: {formatter: '2%'}, data: [{yAxis: 2}]},
                    }],
                },
            });
        }
        if (arrivals.length) {
            const u = W.timeUnit(W.maxAbs(arrivals.map((a) => a.wait_imposed_seconds)));
            W.chart({
                parent: g, id: 'last-arrivals', title: 'Last to arrive at collectives', kind: 'measured',
                note: 'Per rank, the wait it imposed on its peers when it arrived last at a matched collective (its arrival minus ' +
                    'the mean arrival of the others), summed over the steps.',
                height: 320,
                option: {
                    grid: W.grid({top: 40}),
                    tooltip: {
                        trigger: 'axis',
                        formatter: (ps) => {
                            const a = arrivals[ps[0].dataIndex];
                            return `rank ${a.rank}: last in ${a.last_arrivals} of ${a.collectives} collectives<br><b>${W.secs(a.wait_imposed_seconds)}</b> imposed`;
                        },
                    },
                    xAxis: Object.assign({type: 'category', data: arrivals.map((a) => String(a.rank))}, W.xName('rank')),
                    yAxis: Object.assign({type: 'value'}, W.yName(`wait imposed (${u.unit})`)),
                    series: [{name: 'wait imposed', type: 'bar', barMaxWidth: 24, itemStyle: {color: '#29a39b'},
                              data: arrivals.map((a) => W.round(a.wait_imposed_seconds / u.div, 4))}],
                },
            });
        }
    }

    // --- causes table ----------------------------------------------------------------------------
    if (summary.attributed_steps > 0) {
        const sec = W.card(null, 'Causes', 'simulated', 'Seconds lost per step to each cause (what-if replays), and what it involves in the step it cost most.');
        const rows = [...(r.causes || [])].sort((a, b) => b.lost_seconds_per_step - a.lost_seconds_per_step).map((c) => [
            c.title, W.secs(c.lost_seconds_per_step), W.pct(c.fraction_of_step),
            (c.involved || []).slice(0, 3).map((i) => `${i.what} (${W.fix(i.factor, 2)}x)`).join('; '),
        ]);
        W.table(sec, ['cause', 'lost / step', 'of step', 'involved (largest first)'], rows, [1, 2]);
        if (summary.suggested_partition)
            sec.append(h('p', {class: 'note'}, `Stage partition that evens the stages: ${summary.suggested_partition} (measured ${summary.partition || 'unknown'}).`));
    }

    // --- timeline link ---------------------------------------------------------------------------
    const tl = W.card(null, 'Timeline', null, null);
    if (W.page.perfetto)
        tl.append(h('p', {}, 'Perfetto trace written beside this page: ', h('a', {href: W.page.perfetto, download: ''}, W.page.perfetto),
                    ' \u2014 the measured timeline per rank, the ideal (simulated) one beside it, stragglers marked. ' +
                    'Open it in the Perfetto UI (ui.perfetto.dev, "Open trace file"); the trace stays on your machine.'));
    else
        tl.append(h('p', {class: 'note'}, 'Add --perfetto FILE to write the timeline (measured, ideal beside it, stragglers marked) next to this page.'));

    const clock = r.clock_alignment || {};
    W.footer([
        clock.method ? `Clock alignment: ${clock.method}.` : null,
        (r.warnings || []).length ? `${r.warnings.length} warnings: ` + r.warnings.slice(0, 5).map((w) => `${w.where}: ${w.message}`).join('; ') : null,
    ]);
    W.done();
})();
