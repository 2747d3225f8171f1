// The candlestick chart: bars from GET /v2/stocks/bars, kept live from the trade stream (the
// last candle moves with each trade, a new one opens when a trade falls past it) and from
// minute bars. The chart library is lightweight-charts, as npm installed it.

const TIMEFRAME_SECONDS = { "1Min": 60, "5Min": 300, "15Min": 900, "1Hour": 3600, "1Day": 86400 };
const UP = "#16803c";
const DOWN = "#c62828";

let library = null;
async function loadLibrary() {
  if (library === null) {
    library = import("/vendor/lightweight-charts.mjs").catch(() => undefined);
  }
  return library;
}

export class CandleChart {
  constructor(container) {
    this.container = container;
    this.chart = null;
    this.candles = null;
    this.volume = null;
    this.timeframe = "1Min";
    this.last = null; // the newest candle: {time, open, high, low, close, volume}
  }

  // False when the chart library is missing (the page works on without a chart).
  async init() {
    const lib = await loadLibrary();
    if (!lib) return false;
    this.chart = lib.createChart(this.container, {
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: "#1f2933", fontSize: 12 },
      grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#d5dbe1" },
      rightPriceScale: { borderColor: "#d5dbe1" },
      crosshair: { mode: 0 },
    });
    this.candles = this.chart.addSeries(lib.CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      borderUpColor: UP,
      borderDownColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
    });
    this.volume = this.chart.addSeries(lib.HistogramSeries, {
      priceScaleId: "",
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    return true;
  }

  setPrecision(decimals) {
    if (!this.candles) return;
    this.candles.applyOptions({
      priceFormat: { type: "price", precision: decimals, minMove: 1 / 10 ** decimals },
    });
  }

  // Replace the data with REST bars ({t, o, h, l, c, v}), oldest first.
  setBars(bars, timeframe) {
    this.timeframe = timeframe;
    if (!this.candles) return;
    const candles = bars
      .map((bar) => ({
        time: Math.floor(Date.parse(bar.t) / 1000),
        open: bar.o,
        high: bar.h,
        low: bar.l,
        close: bar.c,
        volume: bar.v,
      }))
      .filter((candle) => !Number.isNaN(candle.time))
      .sort((a, b) => a.time - b.time);
    this.candles.setData(candles.map(({ volume, ...candle }) => candle));
    this.volume.setData(candles.map((candle) => this.volumeBar(candle)));
    this.last = candles.length ? { ...candles[candles.length - 1] } : null;
    this.chart.timeScale().scrollToRealTime();
  }

  volumeBar(candle) {
    return {
      time: candle.time,
      value: candle.volume,
      color: candle.close >= candle.open ? "rgba(22,128,60,0.35)" : "rgba(198,40,40,0.35)",
    };
  }

  // The candle a time (seconds) falls in: the newest one's if it is within it.
  bucketOf(seconds) {
    const width = TIMEFRAME_SECONDS[this.timeframe];
    if (this.last && seconds >= this.last.time && seconds < this.last.time + width) {
      return this.last.time;
    }
    return Math.floor(seconds / width) * width;
  }

  // A trade at `price` of `size` at `ms`.
  trade(price, size, ms) {
    if (!this.candles || Number.isNaN(ms)) return;
    const time = this.bucketOf(Math.floor(ms / 1000));
    if (this.last && time < this.last.time) return; // older than the chart's newest candle
    if (this.last && time === this.last.time) {
      this.last.high = Math.max(this.last.high, price);
      this.last.low = Math.min(this.last.low, price);
      this.last.close = price;
      this.last.volume += size;
    } else {
      this.last = { time, open: price, high: price, low: price, close: price, volume: size };
    }
    this.draw();
  }

  // A minute bar from the stream ("b" or "u"): the truth for its minute on the 1Min chart.
  minuteBar(bar) {
    if (!this.candles || this.timeframe !== "1Min") return;
    const time = Math.floor(Date.parse(String(bar.t).replace(/(\.\d{3})\d+/, "$1")) / 1000);
    if (Number.isNaN(time) || (this.last && time < this.last.time)) return;
    this.last = { time, open: bar.o, high: bar.h, low: bar.l, close: bar.c, volume: bar.v };
    this.draw();
  }

  draw() {
    const { volume, ...candle } = this.last;
    this.candles.update(candle);
    this.volume.update(this.volumeBar(this.last));
  }
}

export function timeframeSeconds(timeframe) {
  return TIMEFRAME_SECONDS[timeframe];
}
