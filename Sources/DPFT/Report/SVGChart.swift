import Foundation

/// A small chart as inline SVG: line series (values against the step) or point series (one
/// dot per run, e.g. eval loss against peak book bytes), with axes, ticks and a legend. No
/// script and no external resource: the page that holds it stands alone.
///
/// Every series is one `<g class="series" data-series="NAME">` holding a `<title>` (its name,
/// shown on hover) and a `<polyline>` or `<circle>`s, so that tests and tools can find each by
/// name; the `<svg>` carries `data-chart="ID"`.
public struct SVGChart: Sendable {
    /// How a series is drawn.
    public enum Style: Sendable { case line, points }

    /// One named series of (x, y) points; non-finite points are left out.
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]

        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points.filter { $0.x.isFinite && $0.y.isFinite }
        }
    }

    public var id: String
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var style: Style
    public var series: [Series]
    /// Values each axis covers besides the data's: 0 for sizes (bytes, seconds), 0 and 1 for
    /// fractions, so that the picture does not exaggerate small differences.
    public var xIncludes: [Double]
    public var yIncludes: [Double]

    public init(id: String, title: String, xLabel: String, yLabel: String, style: Style = .line, xIncludes: [Double] = [],
                yIncludes: [Double] = [], series: [Series]) {
        self.xIncludes = xIncludes
        self.yIncludes = yIncludes
        self.id = id
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.style = style
        self.series = series
    }

    // Layout, in SVG user units: the plot area is the box inside the margins; the legend
    // sits in the right margin.
    static let width = 720.0, height = 300.0
    static let left = 72.0, right = 190.0, top = 32.0, bottom = 48.0
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                          "#bcbd22", "#17becf"]
    /// Legend entries shown; more series are drawn but summed up as "+ N more".
    static let legendLimit = 14

    /// The chart as an `<svg>` element.
    public var svg: String {
        let all = series.flatMap(\.points)
        var out = #"<svg xmlns="http://www.w3.org/2000/svg" data-chart="\#(xml(id))" viewBox="0 0 \#(Self.width) \#(Self.height)" width="\#(Int(Self.width))" height="\#(Int(Self.height))" role="img">"#
        out += #"<title>\#(xml(title))</title>"#
        out += #"<text x="\#(Self.left)" y="20" class="chart-title">\#(xml(title))</text>"#
        guard !all.isEmpty else {
            return out + #"<text x="\#(Self.left)" y="\#(Self.height / 2)">no data</text></svg>"#
        }
        let xAxis = Axis(values: all.map(\.x) + xIncludes), yAxis = Axis(values: all.map(\.y) + yIncludes)
        out += axes(xAxis, yAxis)
        for (index, series) in series.enumerated() {
            out += draw(series, color: Self.palette[index % Self.palette.count], xAxis, yAxis)
        }
        return out + legend() + "</svg>"
    }

    private var plotWidth: Double { Self.width - Self.left - Self.right }
    private var plotHeight: Double { Self.height - Self.top - Self.bottom }

    private func x(_ value: Double, _ axis: Axis) -> Double { Self.left + axis.fraction(value) * plotWidth }
    private func y(_ value: Double, _ axis: Axis) -> Double { Self.top + (1 - axis.fraction(value)) * plotHeight }

    /// The frame, ticks with their labels and grid lines, and the axis labels.
    private func axes(_ xAxis: Axis, _ yAxis: Axis) -> String {
        let bottomY = Self.top + plotHeight
        var out = #"<rect x="\#(Self.left)" y="\#(Self.top)" width="\#(plotWidth)" height="\#(plotHeight)" class="frame"/>"#
        for tick in xAxis.ticks {
            let px = format(x(tick, xAxis))
            out += #"<line x1="\#(px)" y1="\#(Self.top)" x2="\#(px)" y2="\#(bottomY)" class="grid"/>"#
            out += #"<text x="\#(px)" y="\#(bottomY + 16)" class="tick" text-anchor="middle">\#(Axis.label(tick))</text>"#
        }
        for tick in yAxis.ticks {
            let py = format(y(tick, yAxis))
            out += #"<line x1="\#(Self.left)" y1="\#(py)" x2="\#(Self.left + plotWidth)" y2="\#(py)" class="grid"/>"#
            out += #"<text x="\#(Self.left - 6)" y="\#(py)" class="tick" text-anchor="end" dominant-baseline="middle">\#(Axis.label(tick))</text>"#
        }
        out += #"<text x="\#(Self.left + plotWidth / 2)" y="\#(Self.height - 8)" class="axis-label" text-anchor="middle">\#(xml(xLabel))</text>"#
        out += #"<text x="14" y="\#(Self.top + plotHeight / 2)" class="axis-label" text-anchor="middle" transform="rotate(-90 14 \#(Self.top + plotHeight / 2))">\#(xml(yLabel))</text>"#
        return out
    }

    private func draw(_ series: Series, color: String, _ xAxis: Axis, _ yAxis: Axis) -> String {
        var out = #"<g class="series" data-series="\#(xml(series.name))"><title>\#(xml(series.name))</title>"#
        let coordinates = series.points.map { (format(x($0.x, xAxis)), format(y($0.y, yAxis))) }
        if style == .line, coordinates.count > 1 {
            let points = coordinates.map { "\($0.0),\($0.1)" }.joined(separator: " ")
            out += #"<polyline points="\#(points)" fill="none" stroke="\#(color)" stroke-width="1.5"/>"#
        } else {
            for (cx, cy) in coordinates {
                out += #"<circle cx="\#(cx)" cy="\#(cy)" r="3.5" fill="\#(color)" fill-opacity="0.8"/>"#
            }
        }
        return out + "</g>"
    }

    /// Swatch and name per series, in the right margin.
    private func legend() -> String {
        let x0 = Self.width - Self.right + 12
        var out = ""
        for (index, series) in series.prefix(Self.legendLimit).enumerated() {
            let y0 = Self.top + 6 + Double(index) * 16
            let name = series.name.count > 26 ? String(series.name.prefix(25)) + "…" : series.name
            out += #"<rect x="\#(x0)" y="\#(y0 - 5)" width="10" height="10" fill="\#(Self.palette[index % Self.palette.count])"/>"#
            out += #"<text x="\#(x0 + 15)" y="\#(y0)" class="legend" dominant-baseline="middle">\#(xml(name))</text>"#
        }
        if series.count > Self.legendLimit {
            let y0 = Self.top + 6 + Double(Self.legendLimit) * 16
            out += #"<text x="\#(x0)" y="\#(y0)" class="legend">+ \#(series.count - Self.legendLimit) more (hover a line)</text>"#
        }
        return out
    }

    private func format(_ value: Double) -> String { String(format: "%.1f", value) }
}

/// A linear axis over some values: its range widened to "nice" tick values (1, 2 or 5 × 10^k).
struct Axis {
    let low: Double, high: Double
    let ticks: [Double]

    init(values: [Double]) {
        var low = values.min() ?? 0, high = values.max() ?? 1
        if low == high {  // one value: a range around it
            let pad = low == 0 ? 1 : abs(low) * 0.1
            low -= pad
            high += pad
        }
        let step = Self.niceStep((high - low) / 5)
        self.low = (low / step).rounded(.down) * step
        self.high = (high / step).rounded(.up) * step
        ticks = stride(from: self.low, through: self.high + step / 2, by: step).map { ($0 / step).rounded() * step }
    }

    /// Where `value` falls in the range, 0…1.
    func fraction(_ value: Double) -> Double { (value - low) / (high - low) }

    /// The smallest 1, 2 or 5 × 10^k at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        let power = pow(10, (log10(raw)).rounded(.down))
        for multiple in [1.0, 2, 5, 10] where multiple * power >= raw { return multiple * power }
        return 10 * power
    }

    /// A tick's label: at most 4 significant digits, no trailing zeros.
    static func label(_ value: Double) -> String {
        abs(value) < 1e-12 ? "0" : String(format: "%.4g", value)
    }
}

/// Text escaped for XML content and attribute values.
func xml(_ text: String) -> String {
    var out = ""
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        case _ where character.asciiValue.map({ $0 < 0x20 }) == true: out += " "  // not allowed in XML 1.0
        default: out.append(character)
        }
    }
    return out
}
