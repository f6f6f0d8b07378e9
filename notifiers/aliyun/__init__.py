"""Alibaba Cloud SMS (dysmsapi): transport, codes, receipts, webhooks and a local fake."""
