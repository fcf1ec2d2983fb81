"""Simulator servers that speak Alpaca's, Binance's and E*Trade's wire protocols."""
