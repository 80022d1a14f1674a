// Live time charts (uPlot): a chart keeps its last points and redraws when one is added.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLOURS = ["#2a7ab8", "#d9822b", "#3a9c5f", "#b8433a", "#7a4fb8", "#8a8a2a", "#2aa8a8", "#a84f8a"];

/** A chart of named series over time, in el; push(timeMs, {name: value}) adds a point. */
export function liveChart(el, { title, unit = "", points = 150, height = 200 } = {}) {
  const names = [];
  const data = [[]];
  const make = () =>
    new uPlot(
      {
        title,
        width: Math.max(300, el.clientWidth || 600),
        height,
        scales: { x: { time: true } },
        axes: [{}, { label: unit, size: 60 }],
        series: [{}, ...names.map((n, i) => ({ label: n, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true }))],
      },
      data,
      el,
    );
  let plot = make();
  const chart = {
    points: 0,
    push(timeMs, values) {
      let grew = false;
      for (const name of Object.keys(values)) {
        if (!names.includes(name)) {
          names.push(name);
          data.push(data[0].map(() => null));
          grew = true;
        }
      }
      data[0].push(timeMs / 1000);
      names.forEach((n, i) => data[i + 1].push(values[n] ?? null));
      if (data[0].length > points) data.forEach((s) => s.shift());
      chart.points++;
      if (grew) {
        plot.destroy();
        plot = make();
      } else {
        plot.setData(data);
      }
    },
    destroy() {
      plot.destroy();
    },
  };
  el.chart = chart;
  return chart;
}
