"""The PyFlink peer of benches/analytics.rs: the same tumbling query over a JSON-lines file.

`python analytics_flink.py FILE [PARALLELISM]`: streaming mode, a `filesystem` source with the
same columns and watermark as the kinedge application, a `blackhole` sink. Prints one line,
`rows_file=... job_seconds=...`, on standard output; the benchmark times the whole process
(JVM start included), as the issue's reference figures do.
"""

import sys
import time


def main() -> None:
    path = sys.argv[1]
    parallelism = sys.argv[2] if len(sys.argv) > 2 else "2"
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    conf.set("parallelism.default", parallelism)
    conf.set("table.local-time-zone", "UTC")
    env.execute_sql(
        f"""CREATE TABLE telemetry (device STRING, temp DOUBLE, ts TIMESTAMP(3),
            WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
            WITH ('connector' = 'filesystem', 'path' = 'file://{path}', 'format' = 'json')"""
    )
    env.execute_sql(
        """CREATE TABLE `out` (window_start TIMESTAMP(3), device STRING, avg_temp DOUBLE,
            max_temp DOUBLE, n BIGINT) WITH ('connector' = 'blackhole')"""
    )
    started = time.monotonic()
    env.execute_sql(
        """INSERT INTO `out` SELECT window_start, device, AVG(temp), MAX(temp), COUNT(*)
            FROM TABLE(TUMBLE(TABLE telemetry, DESCRIPTOR(ts), INTERVAL '10' SECOND))
            GROUP BY window_start, window_end, device"""
    ).wait()
    print(f"job_seconds={time.monotonic() - started:.3f}", flush=True)


if __name__ == "__main__":
    main()
