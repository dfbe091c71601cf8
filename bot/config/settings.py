"""Typed settings for every part of the bot, loaded from a TOML file plus the environment.

Precedence (highest first): environment variables ``BOT__SECTION__KEY`` (e.g.
``BOT__RISK__MAX_DRAWDOWN=0.05``), then a ``.env`` file in the working directory, then the TOML
file. Unknown keys are errors, not silently ignored, because a typo in a risk limit must not
leave the default in force. API secrets are ``SecretStr`` and are accepted only from the
environment or ``.env`` (``BOT__EXCHANGE__API_KEY``, ``BOT__EXCHANGE__API_SECRET``): a TOML file
that contains them is refused, so secrets never end up in a committed file or a run's stored
config snapshot.
"""

from __future__ import annotations

import contextvars
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

SECRET_KEYS = ("api_key", "api_secret", "password", "token")


class ConfigError(Exception):
    """A configuration problem. ``problems`` lists ``(key path, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {key}: {msg}" for key, msg in problems)
        super().__init__(f"invalid configuration {source}:\n{lines}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(_Section):
    """Which world the engine runs in and where it keeps its state."""

    mode: Literal["backtest", "paper", "live"] = "backtest"
    name: str = "default"
    db: str = "data/bot.db"
    log_dir: str = "logs"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    console_log_level: Literal["debug", "info", "warning", "error"] = "warning"
    duration_s: float | None = Field(None, gt=0, description="daemon: stop by itself after this long (None: run until signalled)")
    cancel_open_orders_on_exit: bool = Field(True, description="daemon: cancel our open orders on SIGINT/SIGTERM")
    cancel_open_orders_on_unsound_book: bool = Field(True, description="daemon: cancel our open orders on a gap or stale book")
    status_line: bool = Field(True, description="daemon: a live status line on stderr when it is a terminal (bot run --no-status turns it off too)")
    record_dir: str | None = Field(
        None, description="daemon: record every market event each engine receives under DIR/<run id>/ (bot compare, bot backtest --data)")


class MarketSection(_Section):
    """One traded instrument and its exchange rules (live mode takes them from the exchange instead).

    ``type``: ``spot``; ``linear`` perpetual (Binance USD-M: ``BTC/USDT:USDT``, amounts in
    contracts of ``contract_size`` base, settled in the quote); ``inverse`` perpetual (Binance
    COIN-M: ``BTC/USD:BTC``, one contract is ``contract_size`` USD, settled in the base).
    ``"future"`` is read as ``"linear"`` (what it always meant: USD-M). Symbols are ccxt's
    unified symbols; a derivative's carries its settle currency after ``:``.
    """

    exchange: str = "binance"
    symbol: str = "BTC/USDT"
    type: Literal["spot", "linear", "inverse"] = "spot"
    tick_size: Decimal = Field(Decimal("0.01"), gt=0)
    lot_size: Decimal = Field(Decimal("0.00001"), gt=0, description="amount step: base units on spot, contracts on derivatives")
    min_qty: Decimal = Field(Decimal("0.00001"), ge=0)
    min_notional: Decimal = Field(Decimal("5"), ge=0, description="quote currency (0 on COIN-M, which has none)")
    contract_size: Decimal = Field(Decimal("1"), gt=0, description="linear: base per contract; inverse: quote (USD) per contract")
    leverage: int = Field(1, ge=1, le=125, description="derivatives: leverage set on the exchange at start")
    margin_mode: Literal["isolated", "cross"] = Field("isolated", description="derivatives: margin mode set on the exchange at start")
    maintenance_margin_rate: Decimal = Field(
        Decimal("0.004"), ge=0, lt=1, description="derivatives: maintenance margin rate of the first bracket (liquidation estimate)"
    )
    maintenance_amount: Decimal = Field(Decimal("0"), ge=0, description="derivatives: the bracket's maintenance amount (Binance 'cum')")
    funding_rate_bps: float = Field(
        1.0, ge=-100, le=100, description="backtest/paper: funding rate per 8 h when the data has none (Binance's default 0.01 %)"
    )
    funding_interval_h: int = Field(8, ge=1, le=24, description="hours between funding times (00:00 UTC and every interval after)")

    @model_validator(mode="before")
    @classmethod
    def _future_is_linear(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "future":
            data = {**data, "type": "linear"}
        return data

    @model_validator(mode="after")
    def _symbol_fits_type(self) -> "MarketSection":
        base, slash, rest = self.symbol.partition("/")
        quote, colon, settle = rest.partition(":")
        if not (base and slash and quote):
            raise ValueError(f"symbol {self.symbol!r} is not a ccxt unified symbol such as BTC/USDT, BTC/USDT:USDT or BTC/USD:BTC")
        if self.type == "spot" and colon:
            raise ValueError(f"symbol {self.symbol!r} is a derivative but type is \"spot\"; use type = \"linear\" or \"inverse\"")
        if self.type == "linear" and settle != quote:
            raise ValueError(f"a linear perpetual settles in its quote: use symbol = \"{base}/{quote}:{quote}\" (got {self.symbol!r})")
        if self.type == "inverse" and settle != base:
            raise ValueError(f"an inverse perpetual settles in its base: use symbol = \"{base}/{quote}:{base}\" (got {self.symbol!r})")
        return self

    @property
    def settle(self) -> str:
        """The currency PnL, margin and equity are in: the quote, or the base of an inverse contract."""
        base, _, rest = self.symbol.partition("/")
        quote, _, settle = rest.partition(":")
        return settle or quote


SIGNAL_FEATURES = (
    "book_imbalance", "ofi", "microprice_offset", "trade_imbalance", "vwap_deviation", "vwap_deviation_z",
    "depth_depletion", "depth_depletion_bid", "depth_depletion_ask", "mlofi", "liquidation_flow", "basis_bps", "funding_rate",
)
"""The features every SignalState publishes (bot.signals), by the names research and [signal.model] use."""


class SignalModel(_Section):
    """A linear score fitted by ``bot research --fit``: score = tanh((intercept + Σ coef·feature) / scale_bps).

    The sum is the fitted forward move in bps over ``horizon_s``; ``scale_bps`` (the standard
    deviation of the fitted values on the fit set) maps one typical prediction to tanh(1).
    """

    intercept: float = 0.0
    coefficients: dict[str, float] = Field(default_factory=dict)
    scale_bps: float = Field(1.0, gt=0)
    horizon_s: float = Field(1.0, gt=0, description="the horizon it was fitted for (informative)")
    fitted_on: str = Field("", description="what it was fitted on (informative)")

    @model_validator(mode="after")
    def _known(self) -> "SignalModel":
        unknown = sorted(set(self.coefficients) - set(SIGNAL_FEATURES))
        if unknown:
            raise ValueError(f"unknown features {', '.join(unknown)}; known: {', '.join(SIGNAL_FEATURES)}")
        return self


class SignalSection(_Section):
    """Imbalance features and how they combine into one score in [-1, 1]."""

    depth_levels: int = Field(5, ge=1, le=100, description="levels per side for book imbalance and depth depletion")
    distance_weighted: bool = Field(False, description="weight level i by 1/(i+1) in book imbalance")
    ofi_window_s: float = Field(1.0, gt=0, description="rolling window for summed OFI (L1 and multi-level)")
    ofi_scale: float = Field(5.0, gt=0, description="OFI (base units) mapped to ~0.76 by tanh(ofi/scale)")
    weight_book_imbalance: float = 0.3
    weight_ofi: float = 0.4
    weight_microprice: float = 0.3
    trade_window_s: float = Field(5.0, gt=0, description="trade_imbalance: aggressor volume window")
    vwap_window_s: float = Field(60.0, gt=0, description="vwap_deviation: rolling trade VWAP window (and of its standard deviation)")
    depth_mean_s: float = Field(30.0, gt=0, description="depth_depletion: time constant of each side's mean depth")
    mlofi_levels: int = Field(5, ge=1, le=100, description="mlofi: book levels whose OFI terms are summed")
    liquidation_window_s: float = Field(60.0, gt=0, description="liquidation_flow: forced-order window")
    liquidation_scale: float = Field(10.0, gt=0, description="liquidation_flow (base units) mapped to ~0.76 by tanh(flow/scale)")
    weight_trade_imbalance: float = 0.0
    weight_vwap_deviation: float = Field(0.0, description="on tanh(vwap_deviation_z / 2): + rides a price above its VWAP")
    weight_depth_depletion: float = Field(0.0, description="on depth_depletion (clipped to [-1, 1])")
    weight_mlofi: float = Field(0.0, description="on tanh(mlofi / (ofi_scale x mlofi_levels))")
    weight_liquidation_flow: float = 0.0
    weight_basis: float = Field(0.0, description="on tanh(basis_bps / 10)")
    zscore_window_s: float = Field(0.0, ge=0, description="noise filter: score each input as tanh(z/2) against its own rolling distribution over this window (0: off)")
    persist_ms: float = Field(0.0, ge=0, description="noise filter: the score counts at the weakest level it held, on one side, for this long (0: off)")
    model: SignalModel | None = Field(None, description="a fitted linear score ([signal.model], from `bot research --fit`) instead of the weights")


class MeanReversionSection(_Section):
    """``strategy.mode = "mean_reversion"``: fade a move the features say is exhausted.

    Enter short when the price is stretched above its VWAP (``vwap_deviation_z >= enter_z``) and
    aggressive flow has turned against the move (``trade_imbalance <= -flow_reversal``), and, if
    ``depletion_min`` is set, the book's pressure has turned too (``depth_depletion <=
    -depletion_min``: the bids are the thinner side); long the mirror image. Exit once the price is
    back within ``exit_z`` of its VWAP, or after ``strategy.max_holding_s``.
    """

    enter_z: float = Field(2.0, gt=0, description="|vwap_deviation_z| at least this: stretched")
    exit_z: float = Field(0.5, ge=0, description="exit when the deviation is back within this many standard deviations")
    flow_reversal: float = Field(0.2, ge=0, le=1, description="trade_imbalance against the stretch by at least this")
    depletion_min: float | None = Field(None, description="also require depth_depletion against the stretch by this much (None: not required)")

    @model_validator(mode="after")
    def _exit_inside(self) -> "MeanReversionSection":
        if self.exit_z >= self.enter_z:
            raise ValueError("exit_z must be below enter_z")
        return self


class StrategySection(_Section):
    """How the score becomes orders.

    ``threshold``: market orders when |score| crosses ``enter_threshold``.
    ``taker``: the same, but only when the expected move clears the round-trip cost (fees both
    ways + spread + slippage + margin); the expected move is ``|score| * expected_move_bps``,
    calibrated from ``bot research`` (mean move of the top score bucket at your horizon).
    ``maker``: post-only quotes around a fair price skewed by the score and by inventory, pulled
    when OFI runs against them.
    """

    mode: str = Field("threshold", min_length=1, description="a registered strategy: momentum (alias threshold), taker, maker, mean_reversion, or a plug-in's")
    plugins: list[str] = Field(default_factory=list, description="modules imported before the strategy is looked up (a plug-in registers itself)")
    params: dict[str, Any] = Field(default_factory=dict, description="a plug-in strategy's own settings ([strategy.params])")
    enter_threshold: float = Field(0.6, gt=0, le=1)
    exit_threshold: float = Field(0.0, ge=-1, le=1, description="exit a long when score < this (short: > -this)")
    cooldown_s: float = Field(1.0, ge=0, description="minimum time between entries")
    max_holding_s: float = Field(60.0, gt=0, description="time stop: exit after this long in a position")
    allow_short: bool = True
    expected_move_bps: float = Field(1.0, ge=0, description="taker: expected mid move for |score| = 1, in bps")
    slippage_bps: float = Field(0.0, ge=0, description="taker: expected slippage per leg beyond the touch")
    cost_margin_bps: float = Field(0.0, ge=0, description="taker: extra edge required above the cost")
    quote_offset_ticks: int = Field(1, ge=0, description="maker: quotes this many ticks from the fair price")
    signal_skew_ticks: float = Field(2.0, ge=0, description="maker: fair-price shift for score = 1")
    inventory_skew_ticks: float = Field(2.0, ge=0, description="maker: fair-price shift at the position cap")
    pull_ofi: float = Field(0.5, gt=0, le=1, description="maker: pull a quote when tanh(OFI/scale) runs this far against it")
    requote_ticks: int = Field(1, ge=1, description="maker: move a resting quote when its target moved this far")
    quote_notional: float = Field(500.0, gt=0, description="maker: size of each quote in quote currency (risk caps apply)")
    mean_reversion: MeanReversionSection = MeanReversionSection()
    quote_min_score: float = Field(0.0, ge=0, le=1, description="maker: open or add to a position only on the side the score favours by at least this")
    pull_move_bps: float = Field(0.0, ge=0, description="maker: pull both sides after the mid moved this far within pull_window_s (0: off)")
    pull_flow: float = Field(0.0, ge=0, le=1, description="maker: pull the side aggressive flow hits once |signal.trade_imbalance| reaches this (0: off)")
    pull_depletion: float = Field(0.0, ge=0, le=1, description="maker: pull a side whose top-N depth fell this far below its rolling mean (0: off)")
    pull_microprice: float = Field(0.0, ge=0, le=1, description="maker: pull the bid once the microprice sits this far below the mid (in half-spreads), the ask once above (0: off)")
    fill_cooldown_s: float = Field(0.0, ge=0, description="maker: after a fill, that side quotes again only this much later (0: at once)")
    pull_window_s: float = Field(1.0, gt=0, description="maker: the window of pull_move_bps, and how long quotes stay pulled after it fired")

    @model_validator(mode="after")
    def _exit_below_enter(self) -> "StrategySection":
        if self.exit_threshold >= self.enter_threshold:
            raise ValueError("exit_threshold must be below enter_threshold")
        return self


class RiskSection(_Section):
    """Sizing and the limits that flatten and halt trading."""

    initial_equity: float = Field(10_000.0, gt=0, description="quote currency, backtest/paper (live: the exchange balance)")
    risk_per_trade: float = Field(0.001, gt=0, le=0.1, description="fraction of equity lost if the stop is hit")
    stop_loss_bps: float = Field(10.0, gt=0)
    take_profit_bps: float = Field(15.0, gt=0)
    max_position_notional: float = Field(2_000.0, gt=0)
    max_order_notional: float = Field(1_000.0, gt=0)
    max_depth_fraction: float = Field(0.2, gt=0, le=1, description="of visible top-N depth on the side taken")
    daily_loss_limit: float = Field(0.02, gt=0, le=1, description="fraction of start-of-day equity")
    max_drawdown: float = Field(0.05, gt=0, le=1, description="fraction of peak equity")
    max_book_age_s: float = Field(5.0, gt=0, description="book older than this is stale: no trading")
    price_band: float = Field(
        0.2,
        gt=0,
        le=10,
        description="a book whose mid is more than this fraction away from the last sound mid is unsound (a bad price, not a market)",
    )
    venue_reject_cooldown_s: float = Field(1.0, gt=0, description="after the venue refuses an order: no order on that side for this long")
    venue_reject_cooldown_max_s: float = Field(60.0, gt=0, description="the venue-reject cooldown doubles with each refusal up to this")
    max_exit_rejects: int = Field(3, ge=1, description="exits refused in a row before entries halt (stuck_exit)")
    max_gross_notional: float | None = Field(
        None, gt=0, description="account: sum of every position's notional (settle currency); None: the per-instrument caps x instruments"
    )
    max_leverage: float = Field(3.0, gt=0, le=125, description="account: gross notional over equity")
    max_margin_usage: float = Field(0.5, gt=0, le=1, description="account: initial margin of every derivative position over equity")
    liquidation_buffer_stops: float = Field(
        3.0, ge=0, description="an entry whose estimated liquidation price is closer than this many stop distances is refused"
    )
    kill_switch: bool = Field(False, description="true: flatten and never trade")
    kill_switch_file: str | None = Field(None, description="if this file exists: flatten and halt (touch it to stop trading)")


class ExecutionSection(_Section):
    """Fill model for backtest and paper; fees apply to every mode's accounting."""

    taker_fee_bps: float = Field(10.0, ge=0, le=100)
    maker_fee_bps: float = Field(
        10.0, ge=-10, le=100, description="negative = a rebate (Binance pays market makers on some tiers); booked as a negative fee"
    )
    latency_ms: float = Field(50.0, ge=0, description="decision to fill; the fill sees the book after it")
    queue_model: Literal["back", "proportional"] = Field(
        "back",
        description="whose order a cancel at a resting maker order's level was: back = from behind it first (pessimistic), "
        "proportional = anywhere in the queue, so the queue ahead shrinks by its share",
    )


class StoreSection(_Section):
    batch_size: int = Field(500, ge=1)
    synchronous: Literal["off", "normal", "full"] = Field(
        "normal",
        description=(
            "SQLite commit durability: normal survives a killed process (WAL), full also an OS crash or power loss, "
            "at ~1-5 ms per commit; off never fsyncs (a killed process is still safe, a power loss may corrupt the "
            "file): for backtests only, the daemon refuses it"
        ),
    )
    equity_interval_s: float = Field(1.0, gt=0, description="equity curve sampling; Sharpe uses these returns")


class ExchangeSection(_Section):
    """Exchange connection. Secrets come only from the environment or ``.env``."""

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    sandbox: bool = False
    rest_url: str | None = Field(None, description="override the REST base URL (e.g. the local emulator)")
    ws_url: str | None = Field(None, description="override the websocket base URL (e.g. ws://127.0.0.1:PORT/ws)")
    timeout_ms: int = Field(10_000, ge=100, description="per-request timeout of the ccxt client")
    recv_window_ms: int = Field(
        5_000,
        ge=1_000,
        le=60_000,
        description="how long after signing the exchange may still accept a request (ccxt's recvWindow); "
        "an order lookup that finds nothing once this has passed is final",
    )
    use_websocket: bool = Field(True, description="ccxt.pro websockets for market data; false: REST polling only")
    book_levels: int = Field(50, ge=5, le=1000, description="levels per side taken from the exchange book")
    rest_poll_interval_s: float = Field(0.5, gt=0, description="REST polling cadence (fallback and order status)")
    order_rate_per_s: float = Field(5.0, gt=0, description="our own cap on order requests per second (asyncio-throttle)")
    retry_attempts: int = Field(5, ge=1, le=50)
    retry_base_delay_s: float = Field(0.25, gt=0)
    retry_max_delay_s: float = Field(10.0, gt=0)
    ws_failures_before_rest: int = Field(3, ge=1, description="consecutive websocket failures before REST polling")
    ws_healthy_reset_s: float = Field(60.0, gt=0, description="a websocket healthy this long before it fails starts the failure count afresh")
    position_poll_interval_s: float = Field(
        5.0, gt=0, description="live derivatives: how often the exchange's position and funding are compared with the books"
    )
    mark_poll_interval_s: float = Field(1.0, gt=0, description="derivatives: how often the mark price and funding rate are read (premiumIndex)")


class HttpSection(_Section):
    """The daemon's operator surface (bot.ops): /metrics, the dashboard at / and the JSON API under /api/.

    Off unless ``port`` is set. Every request needs the token (``BOT__HTTP__TOKEN``, from the
    environment or ``.env`` only, like the exchange keys) as ``Authorization: Bearer <token>``.
    """

    host: str = Field("127.0.0.1", min_length=1, description="address the daemon's HTTP server listens on")
    port: int | None = Field(None, ge=0, le=65535, description="serve /metrics, the dashboard and /api/ on this port (None: off; 0: any free port)")
    control: bool = Field(False, description="allow POST /api/pause, /api/flatten and /api/kill (they go through the risk manager)")
    token: SecretStr | None = None


class AlertsSection(_Section):
    """Webhooks that get a JSON POST for halts, the kill switch, repeated exchange errors, a stale feed and a daily summary."""

    webhooks: list[str] = Field(default_factory=list, description="http(s) URLs; each alert is POSTed to every one")
    exchange_errors: int = Field(5, ge=1, description="exchange errors within error_window_s that raise an alert")
    error_window_s: float = Field(60.0, gt=0, description="the window of exchange_errors")
    stale_feed_s: float | None = Field(None, gt=0, description="alert when the book is older than this (None: risk.max_book_age_s)")
    daily_summary: bool = Field(True, description="post a summary of the day after each UTC midnight")
    queue_size: int = Field(100, ge=1, description="alerts waiting to be sent; when full the oldest is dropped (and logged)")
    retries: int = Field(5, ge=0, le=20, description="tries after the first failed POST, with exponential backoff")
    timeout_s: float = Field(5.0, gt=0, description="per POST")

    @model_validator(mode="after")
    def _urls(self) -> "AlertsSection":
        bad = [u for u in self.webhooks if not (u.startswith("http://") or u.startswith("https://"))]
        if bad:
            raise ValueError(f"webhooks must be http:// or https:// URLs; got {', '.join(repr(b) for b in bad)}")
        return self


class SimSection(_Section):
    """The built-in order book simulator used by ``make demo`` (see bot.data.sim)."""

    seed: int = 7
    duration_s: float = Field(600.0, gt=0)
    start_price: float = Field(30_000.0, gt=0)
    levels: int = Field(20, ge=5, le=200)
    event_rate_hz: float = Field(50.0, gt=0)
    imbalance_sensitivity: float = Field(0.35, ge=0, le=0.5)


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix="BOT__",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        case_sensitive=False,
    )

    run: RunSection = RunSection()
    market: MarketSection = MarketSection()
    markets: list[MarketSection] | None = Field(None, description="several instruments in one run ([[markets]]); replaces [market]")
    signal: SignalSection = SignalSection()
    strategy: StrategySection = StrategySection()
    risk: RiskSection = RiskSection()
    execution: ExecutionSection = ExecutionSection()
    store: StoreSection = StoreSection()
    exchange: ExchangeSection = ExchangeSection()
    sim: SimSection = SimSection()
    http: HttpSection = HttpSection()
    alerts: AlertsSection = AlertsSection()

    @model_validator(mode="after")
    def _one_account(self) -> "Settings":
        if self.markets is not None:
            if "market" in self.model_fields_set:
                raise ValueError("give either [market] (one instrument) or [[markets]] (several), not both")
            if not self.markets:
                raise ValueError("[[markets]] is empty: list at least one instrument")
            symbols = [m.symbol for m in self.markets]
            dup = sorted({s for s in symbols if symbols.count(s) > 1})
            if dup:
                raise ValueError(f"markets: {', '.join(dup)} listed twice")
            settles = sorted({m.settle for m in self.markets})
            if len(settles) > 1:
                raise ValueError(
                    f"markets: one run is one account with one settle currency; these settle in {', '.join(settles)}: run them separately"
                )
            types = sorted({m.type for m in self.markets})
            if len(types) > 1:
                # Binance keeps spot, USD-M and COIN-M in separate wallets (and ccxt in separate clients)
                raise ValueError(f"markets: one run trades one wallet, so one market type; got {', '.join(types)}: run them separately")
            exchanges = sorted({m.exchange for m in self.markets})
            if len(exchanges) > 1:
                raise ValueError(f"markets: one run trades one exchange account; got {', '.join(exchanges)}")
        return self

    @property
    def instruments(self) -> list[MarketSection]:
        """Every traded instrument: the ``[[markets]]`` list, or the single ``[market]``."""
        return list(self.markets) if self.markets is not None else [self.market]

    @property
    def settle(self) -> str:
        """The account's currency: equity, PnL and limits are in it."""
        return self.instruments[0].settle

    @model_validator(mode="after")
    def _live_needs_keys(self) -> "Settings":
        if self.run.mode == "live":
            missing = [k for k in ("api_key", "api_secret") if getattr(self.exchange, k) is None]
            if missing:
                raise ValueError(
                    "live mode needs " + " and ".join(f"exchange.{k}" for k in missing)
                    + " from the environment (BOT__EXCHANGE__API_KEY / BOT__EXCHANGE__API_SECRET) or .env"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_data = _FILE_DATA.get()
        return (init_settings, env_settings, dotenv_settings, InitSettingsSource(settings_cls, file_data))

    def snapshot(self) -> dict[str, Any]:
        """The config as plain JSON-able data with secrets removed: stored with every run."""
        data = self.model_dump(mode="json", exclude={"exchange": {"api_key", "api_secret"}, "http": {"token"}})
        data["exchange"]["api_key_set"] = self.exchange.api_key is not None
        data["http"]["token_set"] = self.http.token is not None
        if data.get("markets") is None:
            data.pop("markets", None)
        else:
            data.pop("market", None)  # one or the other, as in the file
        return data


_FILE_DATA: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("bot_config_file", default={})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [("<file>", f"cannot read: {exc.strerror or exc}")]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [("<toml>", str(exc))]) from exc
    secret_problems = [
        (f"{section}.{key}", "secrets are not allowed in config files; set BOT__" f"{section.upper()}__{key.upper()} in the environment or .env")
        for section, body in data.items()
        if isinstance(body, dict)
        for key in body
        if key in SECRET_KEYS
    ]
    if secret_problems:
        raise ConfigError(str(path), secret_problems)
    return data


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against the config reference in README.md)"
        elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        out.append((key, msg))
    return out


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (TOML) and the environment; raise :class:`ConfigError` on any problem.

    ``overrides`` (section dicts) take precedence over everything: tests and the tuner use them.
    """
    data = _read_toml(Path(path)) if path is not None else {}
    token = _FILE_DATA.set(data)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(str(path or "<defaults>"), _problems(exc)) from None
    finally:
        _FILE_DATA.reset(token)


def validate_file(path: str | Path) -> list[tuple[str, str]]:
    """Every problem in a config file as ``(key path, message)``; empty when it is valid."""
    try:
        load_settings(path)
    except ConfigError as exc:
        return exc.problems
    return []
