package dispatch

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/orderpipe/orderpipe/pkg/order"
)

// maxDetail bounds FailureDetail (docs/CONTRACTS.md).
const maxDetail = 256

// requeuedAttributes are the event's attributes in SendMessage form, without failure
// attributes, plus Retries and ThrottledSince (unless since is empty), within the SQS limit of
// 10.
func requeuedAttributes(in map[string]events.SQSMessageAttribute, retries int, since string) map[string]types.MessageAttributeValue {
	if since == "" {
		out := convert(in, maxAttributes-1)
		out[order.AttrRetries] = number(retries)
		return out
	}
	out := convert(in, maxAttributes-2)
	out[order.AttrRetries] = number(retries)
	out[order.AttrThrottledSince] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(since)}
	return out
}

// convert turns the event's attributes into SendMessage form, without failure attributes and
// Retries (a parked order starts a fresh budget when redriven; a re-sent copy gets its own),
// keeping at most limit of them: the order contract's first, then by name.
func convert(in map[string]events.SQSMessageAttribute, limit int) map[string]types.MessageAttributeValue {
	in = order.StripParking(in)
	names := make([]string, 0, len(in))
	for n := range in {
		names = append(names, n)
	}
	contract := []string{order.AttrOrderID, order.AttrSource, order.AttrSourceVersion, order.AttrLine, order.AttrRedrives}
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(contract, a), slices.Index(contract, b)
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
		if a < b {
			return -1
		}
		return 1
	})
	out := make(map[string]types.MessageAttributeValue, len(names))
	for _, n := range names[:min(len(names), limit)] {
		a := in[n]
		out[n] = types.MessageAttributeValue{
			DataType:    aws.String(a.DataType),
			StringValue: a.StringValue,
			BinaryValue: a.BinaryValue,
		}
	}
	return out
}

// parkedAttributes are the original attributes plus FailureClass, FailureDetail, Attempts and
// ParkedAt, within the SQS limit of 10 (original attributes beyond the contract's go first).
func parkedAttributes(in map[string]events.SQSMessageAttribute, class, detail string, attempts int, now time.Time) map[string]types.MessageAttributeValue {
	out := convert(in, maxAttributes-len(order.ParkingAttributes))
	if len(detail) > maxDetail {
		detail = strings.ToValidUTF8(detail[:maxDetail], "")
	}
	if detail == "" {
		detail = class
	}
	str := func(v string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	out[order.AttrFailureClass] = str(class)
	out[order.AttrFailureDetail] = str(detail)
	out[order.AttrAttempts] = number(attempts)
	out[order.AttrParkedAt] = str(now.UTC().Format(time.RFC3339))
	return out
}

func number(n int) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(n))}
}
