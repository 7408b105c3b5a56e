// wlbtune HTML report: what every page shares (reports/html/html_report.hpp).
//
// The data is the JSON in #wlb-data ({kind, report, view, page}: reports/html/page_data.hpp);
// the kind's script (analyze.js, tune.js, compare.js) lays out the page with the helpers below
// and calls WLB.done() when every chart is drawn. Every chart is an ECharts instance made by
// WLB.chart, with a badge that says what its figures are: measured (read from the traces),
// simulated (the simulator, or a what-if replay on it), predicted (the cost model) or exact
// (counted from the packing). Text from the data is always inserted as text, never as HTML.
//
// Self-check: at the load event the page writes into #wlb-check (JSON) the errors and failed
// loads it saw (the capture in page.html's head), the resources it loaded (a self-contained
// page loads none), each chart's drawn marks (the displayable elements ECharts built for its
// series) and how long it took to draw (draw_ms), how far the page overflows the window's
// width, and when the page's code started (script_start_ms: the markup and the library are
// parsed), parsed its data (data_parse_ms) and finished drawing (ready_ms), from navigation
// start. tests/integration/test_html_report.cpp reads it.
'use strict';

const WLB = (function () {
    const startMs = performance.now(); // the library and the markup before it are parsed
    const data = JSON.parse(document.getElementById('wlb-data').textContent);
    const dataMs = performance.now() - startMs;
    const root = document.getElementById('wlb-page');
    const charts = [];
    let readyMs = null;

    const palette = ['#2f5bd3', '#e4572e', '#f3a712', '#29a39b', '#8a4baf', '#6c757d', '#c1447e',
                     '#4c9f38', '#1b998b', '#a0522d'];

    // An element with attributes and children (strings become text nodes).
    function h(tag, attrs, ...kids) {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v == null || v === false)
                continue;
            if (k === 'class')
                e.className = v;
            else
                e.setAttribute(k, v);
        }
        for (const k of kids.flat())
            if (k != null && k !== false)
                e.append(k instanceof Node ? k : String(k));
        return e;
    }

    // --- numbers ---------------------------------------------------------------------------
    const MU = '\u00b5';
    // Seconds in the unit that suits them: "1.234 s", "45.6 ms", "789 us".
    function secs(s) {
        if (s == null || !isFinite(s))
            return '\u2013';
        const a = Math.abs(s);
        if (a === 0)
            return '0 s';
        if (a >= 1)
            return s.toFixed(a >= 100 ? 0 : a >= 10 ? 2 : 3) + ' s';
        if (a >= 1e-3)
            return (s * 1e3).toFixed(a >= 0.1 ? 1 : 2) + ' ms';
        return (s * 1e6).toFixed(a >= 1e-4 ? 0 : 1) + ' ' + MU + 's';
    }
    // An axis unit for values up to maxAbs seconds: {div, unit}; value / div reads in unit.
    function timeUnit(maxAbs) {
        if (maxAbs >= 1)
            return {div: 1, unit: 's'};
        if (maxAbs >= 1e-3)
            return {div: 1e-3, unit: 'ms'};
        return {div: 1e-6, unit: MU + 's'};
    }
    function pct(f, digits) {
        return f == null || !isFinite(f) ? '\u2013' : (100 * f).toFixed(digits == null ? 1 : digits) + '%';
    }
    function fix(x, digits) {
        return x == null || !isFinite(x) ? '\u2013' : Number(x).toFixed(digits == null ? 3 : digits);
    }
    function round(x, digits) {
        const f = Math.pow(10, digits == null ? 4 : digits);
        return Math.round(x * f) / f;
    }
    function maxAbs(values) {
        let m = 0;
        for (const v of values)
            if (v != null && isFinite(v))
                m = Math.max(m, Math.abs(v));
        return m;
    }
    // Quartiles for a box plot: [min, q1, median, q3, max].
    function boxOf(values) {
        const v = values.filter((x) => x != null && isFinite(x)).sort((a, b) => a - b);
        if (!v.length)
            return null;
        const q = (p) => {
            const at = (v.length - 1) * p;
            const lo = Math.floor(at), hi = Math.ceil(at);
            return v[lo] + (v[hi] - v[lo]) * (at - lo);
        };
        return [v[0], q(0.25), q(0.5), q(0.75), v[v.length - 1]];
    }

    // --- layout ----------------------------------------------------------------------------
    const labels = {
        measured: 'measured',
        simulated: 'simulated',
        predicted: 'predicted',
        exact: 'exact',
    };
    function badge(kind) {
        return h('span', {class: 'badge ' + kind, title: badgeTitle(kind)}, labels[kind] || kind);
    }
    function badgeTitle(kind) {
        return {
            measured: 'read from the traces',
            simulated: 'computed by wlbtune\'s simulator (a what-if replay or a simulated step)',
            predicted: 'predicted by the cost model',
            exact: 'counted from the packing, not estimated',
        }[kind];
    }
    function header(title, lines) {
        root.append(h('header', {}, h('h1', {}, title), lines.filter((l) => l).map((l) => h('p', {class: 'sub'}, l))));
    }
    // The answer first: a headline, sentences (strings or nodes), and key figures
    // [{k, v, kind}] with their badges.
    function answer(big, lines, kpis) {
        const box = h('div', {class: 'answer'}, h('div', {class: 'big'}, big),
                      lines.filter((l) => l).map((l) => h('p', {}, l)));
        if (kpis && kpis.length)
            box.append(h('div', {class: 'kpis'}, kpis.map((x) =>
                h('div', {class: 'kpi'}, h('div', {class: 'v'}, x.v), h('div', {class: 'k'}, x.k, x.kind ? badge(x.kind) : null)))));
        root.append(box);
        return box;
    }
    function card(parent, title, kind, note) {
        const sec = h('section', {class: 'card'}, h('h2', {}, title), kind ? badge(kind) : null,
                      note ? h('p', {class: 'note'}, note) : null);
        (parent || root).append(sec);
        return sec;
    }
    function row(parent) {
        const g = h('div', {class: 'grid2'});
        (parent || root).append(g);
        return g;
    }
    function table(parent, headers, rows, numeric) {
        const num = new Set(numeric || []);
        const t = h('table', {},
                    h('thead', {}, h('tr', {}, headers.map((x, i) => h('th', {class: num.has(i) ? 'num' : null}, x)))),
                    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((x, i) => h('td', {class: num.has(i) ? 'num' : null}, x))))));
        parent.append(h('div', {class: 'tablewrap'}, t));
        return t;
    }

    // --- charts ----------------------------------------------------------------------------
    // A card holding one chart: spec = {id, title, kind, note, height, option, parent}.
    function chart(spec) {
        const sec = card(spec.parent, spec.title, spec.kind, spec.note);
        const div = h('div', {class: 'chart', id: 'chart-' + spec.id, role: 'img', 'aria-label': spec.title});
        if (spec.height)
            div.style.height = spec.height + 'px';
        sec.append(div);
        const t0 = performance.now();
        const inst = echarts.init(div, null, {renderer: 'canvas'});
        const option = Object.assign({
            animation: false,
            color: palette,
            textStyle: {fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif'},
        }, spec.option);
        // Draw everything at once: progressive rendering would leave marks for later frames.
        for (const s of [].concat(option.series || []))
            if (s.progressive == null)
                s.progressive = 0;
        inst.setOption(option);
        charts.push({id: spec.id, inst: inst, ms: performance.now() - t0});
        return inst;
    }
    // Axis helpers: names with units, readable in a narrow window.
    // The name under the axis; tick labels that would overlap (a narrow window) are left out.
    function xName(name) {
        return {name: name, nameLocation: 'middle', nameGap: 28, nameTextStyle: {color: '#5b6475'},
                axisLabel: {hideOverlap: true}};
    }
    // The name above the axis (at its start when the axis is inverted, top to bottom).
    function yName(name, inverse) {
        return {name: name, inverse: !!inverse, nameLocation: inverse ? 'start' : 'end', nameGap: 12,
                nameTextStyle: {color: '#5b6475', align: 'left'}};
    }
    function grid(extra) {
        return Object.assign({left: 12, right: 24, top: 48, bottom: 44}, extra || {});
    }
    function legend(extra) {
        return Object.assign({type: 'scroll', top: 0, left: 'center'}, extra || {});
    }

    // Marks each chart drew: displayable elements in its series' views.
    function marksOf(inst) {
        let marks = 0, series = 0, empty = 0;
        inst.getModel().eachSeries(function (s) {
            ++series;
            const view = inst.getViewOfSeriesModel(s);
            let n = 0;
            if (view && view.group)
                view.group.traverse(function (e) {
                    if (!e.isGroup && !e.ignore && !e.invisible)
                        ++n;
                });
            if (s.getData().count() > 0 && n === 0)
                ++empty;
            marks += n;
        });
        return {marks: marks, series: series, empty_series: empty};
    }

    function selfCheck() {
        const out = {
            kind: data.kind,
            ready_ms: readyMs,
            script_start_ms: round(startMs, 1),
            data_parse_ms: round(dataMs, 1),
            problems: (window.wlbProblems || []).slice(),
            resources: performance.getEntriesByType('resource').map((r) => r.name),
            overflow_px: Math.max(0, document.documentElement.scrollWidth - window.innerWidth),
            charts: [],
        };
        for (const c of charts) {
            let m;
            try {
                m = marksOf(c.inst);
            } catch (e) {
                m = {marks: 0, series: 0, empty_series: 0, error: String(e)};
            }
            out.charts.push(Object.assign({id: c.id, draw_ms: round(c.ms, 1)}, m));
        }
        document.getElementById('wlb-check').textContent = JSON.stringify(out);
    }

    // Provenance: the command line, the tool, the inputs, and how the numbers were rounded.
    function footer(extra) {
        const r = data.report;
        const f = h('footer', {});
        (extra || []).filter((x) => x).forEach((x) => f.append(h('p', {}, x)));
        if (r.command_line)
            f.append(h('p', {}, 'Command: ', h('code', {}, [].concat(r.command_line).join(' '))));
        if (r.tool)
            f.append(h('p', {}, 'Tool: ', typeof r.tool === 'string' ? r.tool :
                (r.tool.name || 'wlbtune') + ' ' + (r.tool.version || '') + ' (CUDA ' + r.tool.cuda + ', MPI ' + r.tool.mpi + ')'));
        if (r.inputs && r.inputs.length) {
            const shown = r.inputs.slice(0, 4).map((i) => i.path + (i.hash ? ' (' + i.hash + ')' : '')).join('; ');
            f.append(h('p', {}, 'Inputs: ', shown, r.inputs.length > 4 ? '; and ' + (r.inputs.length - 4) + ' more' : ''));
        }
        f.append(h('p', {}, 'Data: the command\'s ' + (r.schema || '') + ' report (the same as its --json), numbers to ' +
            data.page.significant_digits + ' significant digits, embedded in this page; the page loads nothing from the network. ' +
            'Charts: Apache ECharts (Apache-2.0), inlined.'));
        root.append(f);
    }

    function done() {
        readyMs = round(performance.now(), 1);
    }

    window.addEventListener('resize', function () {
        for (const c of charts)
            c.inst.resize();
    });
    window.addEventListener('load', selfCheck);

    return {
        data, report: data.report, view: data.view, page: data.page, h, secs, timeUnit, pct, fix,
        round, maxAbs, boxOf, badge, header, answer, card, row, table, chart, xName, yName, grid,
        legend, footer, done, palette,
    };
})();
